# Generates kube-proxy v1.36-layout rules for N Services x E endpoints:
# nft input (table ip kube-proxy) and iptables-restore input (nat), to time
# the churn readers' commands at scale in a scratch network namespace.
import sys, hashlib, base64
N, E = int(sys.argv[1]), int(sys.argv[2])
def b32(s): return base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()
def h16(s): return b32(s)[:16]
def ip(i): return "198.19.%d.%d" % (i // 250, i % 250 + 1)
def ep(j): return "198.18.%d.%d:80" % (1 + j // 250, j % 250 + 1)
with open("nft.in", "w") as f:
    f.write("table ip kube-proxy {\n")
    f.write("\tset cluster-ips {\n\t\ttype ipv4_addr\n\t}\n")
    f.write("\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t}\n")
    f.write("\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}\n")
    f.write("}\n")
    for i in range(N):
        name = "kpbench/kpb-svc-%05d/tcp/" % i
        ch = "service-" + b32(name)[:8] + "-" + name
        m = ", ".join("%d : %s . 80" % (k, ep(k + i % 5)[:-3]) for k in range(E))
        f.write("add chain ip kube-proxy %s\n" % ch)
        f.write("add rule ip kube-proxy %s meta l4proto tcp dnat ip addr . port to numgen random mod %d map { %s }\n" % (ch, E, m))
        f.write("add element ip kube-proxy cluster-ips { %s }\n" % ip(i))
        f.write("add element ip kube-proxy service-ips { %s . tcp . 80 : goto %s }\n" % (ip(i), ch))
with open("ipt.in", "w") as f:
    chains, rules = [":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]"], []
    for i in range(N):
        spn = "kpbench/kpb-svc-%05d" % i
        svc = "KUBE-SVC-" + h16(spn + "tcp")
        chains.append(":%s - [0:0]" % svc)
        rules.append('-A KUBE-SERVICES -m comment --comment "%s cluster IP" -m tcp -p tcp -d %s --dport 80 -j %s' % (spn, ip(i), svc))
        for k in range(E):
            e = ep(k + i % 5)
            sep = "KUBE-SEP-" + h16(spn + "tcp" + e)
            chains.append(":%s - [0:0]" % sep)
            prob = " -m statistic --mode random --probability %.11f" % (1.0 / (E - k)) if k < E - 1 else ""
            rules.append("-A %s%s -j %s" % (svc, prob, sep))
            rules.append("-A %s -s %s -j KUBE-MARK-MASQ" % (sep, e.split(":")[0]))
            rules.append("-A %s -m tcp -p tcp -j DNAT --to-destination %s" % (sep, e))
    f.write("*nat\n" + "\n".join(chains) + "\n" + "\n".join(rules) + "\nCOMMIT\n")
print(ip(N // 2), "kpbench/kpb-svc-%05d" % (N // 2), "KUBE-SVC-" + h16("kpbench/kpb-svc-%05d" % (N // 2) + "tcp"),
      "service-" + b32("kpbench/kpb-svc-%05d/tcp/" % (N // 2))[:8] + "-kpbench/kpb-svc-%05d/tcp/" % (N // 2))
