//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The span this probe times, per TCP connection of the client:
//
//   from  raw tracepoint inet_sock_set_state, newstate TCP_SYN_SENT
//         (connect(2) in the client's own context)
//   to    raw tracepoint net_dev_queue of the first skb whose sk is that
//         socket (the SYN handed to the egress device)
//
// That is the SYN's trip through routing, netfilter LOCAL_OUT (raw, mangle,
// nat, filter) and POST_ROUTING: where kube-proxy's Service lookup runs for
// a client on the node (the iptables KUBE-SERVICES walk, the nftables
// verdict map, IPVS's LOCAL_OUT hook). Only tracepoints are used: kprobes
// and fentry are not needed.
//
// Built by `make generate` (bpf2go, clang-16); the generated objects are
// committed so that `go build` needs no clang.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_RINGBUF 27
#define BPF_ANY 0

#define TCP_SYN_SENT 2
#define IPPROTO_TCP 6

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)113;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)130;

// Kernel types, reduced to the fields read; CO-RE relocates their offsets
// against the running kernel's BTF.
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} __attribute__((preserve_access_index)) possible_net_t;

struct sock_common {
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct sock *sk;
} __attribute__((preserve_access_index));

struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

// Set at load time: the network namespace (inode number) whose connections
// are timed; 0 times every namespace's.
volatile const __u32 netns_inum = 0;

struct start {
	__u64 ts;
	__u32 tgid;
	__u32 pad;
};

// One record per timed connection: when its SYN_SENT happened (ns of
// CLOCK_MONOTONIC), the span to net_dev_queue, and the connecting process.
struct event {
	__u64 start_ns;
	__u32 span_ns;
	__u32 tgid;
};

// Counters: what the probe saw and what it could not keep.
enum {
	COUNT_STARTS,      // SYN_SENT of a TCP socket in the namespace
	COUNT_TIMED,       // reached net_dev_queue and was written out
	COUNT_LOST,        // the ring buffer was full
	COUNT_UNREADABLE,  // a socket's fields could not be read
	COUNT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct start);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// Force the event type into BTF so that bpf2go generates its Go type.
const struct event *unused_event __attribute__((unused));

static __attribute__((always_inline)) void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += 1;
}

SEC("raw_tracepoint/inet_sock_set_state")
int syn_sent(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int newstate = (int)ctx->args[2];
	if (newstate != TCP_SYN_SENT)
		return 0;

	__u16 proto = 0;
	if (bpf_probe_read_kernel(&proto, sizeof(proto), &sk->sk_protocol) < 0) {
		count(COUNT_UNREADABLE);
		return 0;
	}
	if (proto != IPPROTO_TCP)
		return 0;
	if (netns_inum) {
		struct net *net = 0;
		__u32 inum = 0;
		if (bpf_probe_read_kernel(&net, sizeof(net), &sk->__sk_common.skc_net.net) < 0 ||
		    bpf_probe_read_kernel(&inum, sizeof(inum), &net->ns.inum) < 0) {
			count(COUNT_UNREADABLE);
			return 0;
		}
		if (inum != netns_inum)
			return 0;
	}

	__u64 key = (__u64)sk;
	struct start s = {
		.ts = bpf_ktime_get_ns(),
		.tgid = bpf_get_current_pid_tgid() >> 32,
	};
	bpf_map_update_elem(&starts, &key, &s, BPF_ANY);
	count(COUNT_STARTS);
	return 0;
}

SEC("raw_tracepoint/net_dev_queue")
int syn_queued(struct bpf_raw_tracepoint_args *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx->args[0];
	struct sock *sk = 0;
	if (bpf_probe_read_kernel(&sk, sizeof(sk), &skb->sk) < 0 || !sk)
		return 0;

	__u64 key = (__u64)sk;
	struct start *s = bpf_map_lookup_elem(&starts, &key);
	if (!s)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct event e = {
		.start_ns = s->ts,
		.span_ns = (__u32)(now - s->ts),
		.tgid = s->tgid,
	};
	bpf_map_delete_elem(&starts, &key);
	if (bpf_ringbuf_output(&events, &e, sizeof(e), 0) < 0) {
		count(COUNT_LOST);
		return 0;
	}
	count(COUNT_TIMED);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
