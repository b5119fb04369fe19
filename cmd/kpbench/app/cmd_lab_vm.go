package app

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/vm"
)

// nodeFlags are the client-node options of `lab up` and `run`.
type nodeFlags struct {
	node            string
	iptablesBackend string
	vm              lab.VMConfig
}

func (f *nodeFlags) register(fl *pflag.FlagSet, prefix string) {
	fl.StringVar(&f.node, "node", lab.NodeNetns, prefix+"client node: netns (a network namespace of this machine) or vm (a qemu guest with its own kernel, e.g. for IPVS)")
	fl.StringVar(&f.iptablesBackend, "iptables-backend", "", prefix+"iptables backend of kube-proxy and the client node's tools: nft or legacy (default: the host's iptables)")
	fl.StringVar(&f.vm.Kernel, "kernel", "", prefix+"node VM: guest kernel bzImage (default the newest /boot/vmlinuz-* with modules, e.g. Debian's linux-image-amd64)")
	fl.StringVar(&f.vm.Modules, "kernel-modules", "", prefix+"node VM: the kernel's modules directory (default /lib/modules/RELEASE)")
	fl.StringVar(&f.vm.Initrd, "initrd", "", prefix+"node VM: initramfs to boot instead of the generated one (see docs/lab.md)")
	fl.StringVar(&f.vm.Accel, "accel", vm.AccelAuto, prefix+"node VM: auto (KVM when a probe boot works, else TCG), kvm or tcg")
	fl.IntVar(&f.vm.MemoryMiB, "vm-memory", 0, fmt.Sprintf("%snode VM: memory in MiB (default %d)", prefix, lab.DefaultVMMemoryMiB))
}

func (f *nodeFlags) apply(cfg *lab.Config) {
	cfg.Node, cfg.VM, cfg.IPTablesBackend = f.node, f.vm, f.iptablesBackend
	if cfg.Node == lab.NodeNetns {
		cfg.Node = ""
	}
	if cfg.VM.Accel == vm.AccelAuto {
		cfg.VM.Accel = ""
	}
}

// newLabVMInitCmd is PID 1 of a VM client node (run by its initramfs on
// this machine's root, shared read-only). Not for people.
func newLabVMInitCmd(g *globals) *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:    "vm-init",
		Short:  "PID 1 of the lab's node VM",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Getpid() != 1 {
				// It mounts and powers off: never on this machine.
				return &ExitError{Code: ExitUsage, Err: fmt.Errorf("vm-init runs only as PID 1 of the lab's node VM")}
			}
			console := vm.ConsoleDevice()
			err := vm.Init(config, console)
			fmt.Fprintf(console, "kpbench-vm: %v; powering off\n", err)
			vm.PowerOff()
			return err
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "guest configuration file")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// newLabVMAgentCmd is the agent in a VM client node. Not for people.
func newLabVMAgentCmd(g *globals) *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:    "vm-agent",
		Short:  "The lab's agent inside its node VM",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return vm.RunAgent(config, vm.ConsoleDevice(), g.logger)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "guest configuration file")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
