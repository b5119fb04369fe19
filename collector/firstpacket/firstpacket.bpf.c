//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The spans this probe times, per TCP connection of the client:
//
// First packet (KIND_FIRST):
//   from  raw tracepoint inet_sock_set_state, newstate TCP_SYN_SENT
//         (connect(2) in the client's own context)
//   to    raw tracepoint net_dev_queue of the first skb whose sk is that
//         socket (the SYN handed to the egress device)
//
// That is the SYN's trip through routing, netfilter LOCAL_OUT (raw, mangle,
// nat, filter) and POST_ROUTING: where kube-proxy's Service lookup runs for
// a client on the node (the iptables KUBE-SERVICES walk, the nftables
// verdict map, IPVS's LOCAL_OUT hook).
//
// The way back (KIND_RETURN):
//   from  raw tracepoint netif_receive_skb of the SYN-ACK on a device in
//         the socket's network namespace (__netif_receive_skb_core, in the
//         receive softirq, whatever way the driver handed it over: the
//         backlog of netif_rx as veth and loopback do, or NAPI and GRO)
//   to    raw tracepoint inet_sock_set_state, SYN_SENT -> ESTABLISHED of
//         that socket (tcp_finish_connect)
//
// The SYN-ACK is told by its addresses and ports: at the SYN's
// net_dev_queue its IP and TCP headers (skb->head + network_header and
// transport_header, set on the way out) give the connection's tuple as it
// leaves the namespace, after every NAT of LOCAL_OUT and POST_ROUTING; the
// SYN-ACK reaches the namespace with that tuple reversed, before conntrack
// undoes the NAT. At netif_receive_skb the skb's data is the network
// header (eth_type_trans pulled the link header; __netif_receive_skb_core
// sets network_header from data right after the tracepoint), and the
// headers are read from there when they lie in the linear part.
//
// Only tracepoints are used: kprobes and fentry are not needed.
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

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define IPPROTO_TCP 6

// skb->protocol values as read on a little-endian machine (network order).
#define ETH_P_IP_BE 0x0008
#define ETH_P_IPV6_BE 0xDD86

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

// An unset skb header offset (skb_transport_header_was_set).
#define NO_HEADER 0xffff

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

struct net_device {
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct sock *sk;
	struct net_device *dev;
	unsigned int len;
	unsigned int data_len;
	__u16 protocol;
	__u16 transport_header;
	__u16 network_header;
	unsigned char *head;
	unsigned char *data;
} __attribute__((preserve_access_index));

// The headers' first bytes, as on the wire.
struct iphdr4 {
	__u8 version_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct iphdr6 {
	__u32 version_class_flow;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

// The TCP header up to its flags.
struct tcphdr14 {
	__u16 source;
	__u16 dest;
	__u32 seq;
	__u32 ack_seq;
	__u8 doff;
	__u8 flags;
};

struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

// Set at load time: the network namespace (inode number) whose connections
// are timed; 0 times every namespace's.
volatile const __u32 netns_inum = 0;

struct start {
	__u64 ts;
	__u32 tgid;
	__u32 netns;
};

// A connection's SYN as it left its namespace: the key its SYN-ACK is
// found by. Addresses and ports in network order; an IPv4 address takes
// the first 4 bytes of its field.
struct tuple {
	__u32 netns;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

// A connection whose SYN left, waiting for its SYN-ACK.
struct flight {
	__u64 sk;
	__u64 syn_sent_ns;
	__u32 tgid;
	__u32 pad;
};

// A connection whose SYN-ACK arrived, waiting for ESTABLISHED.
struct arrival {
	__u64 syn_sent_ns;
	__u64 arrived_ns;
	__u32 tgid;
	__u32 pad;
};

enum {
	KIND_FIRST,   // SYN_SENT -> the SYN at net_dev_queue
	KIND_RETURN,  // the SYN-ACK at netif_receive_skb -> ESTABLISHED
};

// One record per timed span: when the connection's SYN_SENT happened (ns
// of CLOCK_MONOTONIC; both spans of a connection carry it, so that one
// window rule counts both), the span, the connecting process, and which
// span it is.
struct event {
	__u64 start_ns;
	__u32 span_ns;
	__u32 tgid;
	__u32 kind;
	__u32 pad;
};

// Counters: what the probe saw and what it could not keep.
enum {
	COUNT_STARTS,      // SYN_SENT of a TCP socket in the namespace
	COUNT_TIMED,       // reached net_dev_queue and was written out
	COUNT_LOST,        // the ring buffer was full
	COUNT_UNREADABLE,  // a socket's or skb's fields could not be read
	COUNT_ARRIVED,     // a timed connection's SYN-ACK reached its namespace
	COUNT_RETURNED,    // then ESTABLISHED, and was written out
	COUNT_UNPARSED,    // a timed SYN's, or a received IP packet's, headers
	                   // could not be parsed (not in the linear data)
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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tuple);
	__type(value, struct flight);
} tuples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct arrival);
} arrivals SEC(".maps");

// Force the event type into BTF so that bpf2go generates its Go type.
const struct event *unused_event __attribute__((unused));

static __attribute__((always_inline)) void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += 1;
}

// netns_of reads the inode number of a network namespace reference.
static __attribute__((always_inline)) int netns_of(possible_net_t *pnet, __u32 *inum)
{
	struct net *net = 0;
	if (bpf_probe_read_kernel(&net, sizeof(net), &pnet->net) < 0 || !net ||
	    bpf_probe_read_kernel(inum, sizeof(*inum), &net->ns.inum) < 0)
		return -1;
	return 0;
}

// read_tcp reads the TCP header's ports and flags at th into tcp (ports as
// they are) and returns the flags, or -1.
static __attribute__((always_inline)) int read_tcp(const unsigned char *th, struct tcphdr14 *tcp)
{
	if (bpf_probe_read_kernel(tcp, sizeof(*tcp), th) < 0)
		return -1;
	return tcp->flags;
}

// syn_tuple fills t from an outgoing SYN's headers (network_header and
// transport_header are set on the way out). It returns 0 for a SYN
// without ACK, -1 otherwise.
static __attribute__((always_inline)) int syn_tuple(struct sk_buff *skb, struct tuple *t)
{
	unsigned char *head = 0;
	__u16 nh = 0, th = 0;
	if (bpf_probe_read_kernel(&head, sizeof(head), &skb->head) < 0 ||
	    bpf_probe_read_kernel(&nh, sizeof(nh), &skb->network_header) < 0 ||
	    bpf_probe_read_kernel(&th, sizeof(th), &skb->transport_header) < 0 ||
	    !head || nh == NO_HEADER || th == NO_HEADER)
		return -1;
	__u8 version = 0;
	if (bpf_probe_read_kernel(&version, sizeof(version), head + nh) < 0)
		return -1;
	version >>= 4;
	if (version == 4) {
		struct iphdr4 ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) < 0 || ip.protocol != IPPROTO_TCP)
			return -1;
		__builtin_memcpy(t->saddr, ip.saddr, 4);
		__builtin_memcpy(t->daddr, ip.daddr, 4);
		t->family = 4;
	} else if (version == 6) {
		struct iphdr6 ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) < 0 || ip.nexthdr != IPPROTO_TCP)
			return -1;
		__builtin_memcpy(t->saddr, ip.saddr, 16);
		__builtin_memcpy(t->daddr, ip.daddr, 16);
		t->family = 6;
	} else {
		return -1;
	}
	struct tcphdr14 tcp;
	int flags = read_tcp(head + th, &tcp);
	if (flags < 0 || (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return -1;
	t->sport = tcp.source;
	t->dport = tcp.dest;
	return 0;
}

// synack_tuple fills t from a received packet's headers, reversed (its
// destination is the connection's source), where skb->data is the
// network header. It returns 0 for a TCP SYN-ACK, 1 for any other packet
// and -1 where the headers could not be read.
static __attribute__((always_inline)) int synack_tuple(struct sk_buff *skb, struct tuple *t)
{
	unsigned char *data = 0;
	unsigned int len = 0, data_len = 0;
	__u16 proto = 0;
	if (bpf_probe_read_kernel(&proto, sizeof(proto), &skb->protocol) < 0)
		return -1;
	if (proto != ETH_P_IP_BE && proto != ETH_P_IPV6_BE)
		return 1;
	if (bpf_probe_read_kernel(&data, sizeof(data), &skb->data) < 0 ||
	    bpf_probe_read_kernel(&len, sizeof(len), &skb->len) < 0 ||
	    bpf_probe_read_kernel(&data_len, sizeof(data_len), &skb->data_len) < 0 ||
	    !data || data_len > len)
		return -1;
	// Only the linear part is read: the rest may lie in pages.
	__u32 headlen = len - data_len;
	__u32 thoff;
	if (proto == ETH_P_IP_BE) {
		struct iphdr4 ip;
		if (headlen < sizeof(ip) || bpf_probe_read_kernel(&ip, sizeof(ip), data) < 0)
			return -1;
		if ((ip.version_ihl >> 4) != 4 || ip.protocol != IPPROTO_TCP)
			return 1;
		// A later fragment has no TCP header.
		if (ip.frag_off & __builtin_bswap16(0x1fff))
			return 1;
		thoff = (ip.version_ihl & 0xf) * 4;
		if (thoff < sizeof(ip))
			return 1;
		__builtin_memcpy(t->saddr, ip.daddr, 4);
		__builtin_memcpy(t->daddr, ip.saddr, 4);
		t->family = 4;
	} else {
		struct iphdr6 ip;
		if (headlen < sizeof(ip) || bpf_probe_read_kernel(&ip, sizeof(ip), data) < 0)
			return -1;
		// A SYN-ACK carries no extension headers.
		if ((ip.version_class_flow & 0xf0) != 0x60 || ip.nexthdr != IPPROTO_TCP)
			return 1;
		thoff = sizeof(ip);
		__builtin_memcpy(t->saddr, ip.daddr, 16);
		__builtin_memcpy(t->daddr, ip.saddr, 16);
		t->family = 6;
	}
	if (headlen < thoff + sizeof(struct tcphdr14))
		return -1;
	struct tcphdr14 tcp;
	int flags = read_tcp(data + thoff, &tcp);
	if (flags < 0)
		return -1;
	if ((flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) != (TCP_FLAG_SYN | TCP_FLAG_ACK))
		return 1;
	t->sport = tcp.dest;
	t->dport = tcp.source;
	return 0;
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
	__u32 inum = 0;
	if (netns_of(&sk->__sk_common.skc_net, &inum) < 0) {
		count(COUNT_UNREADABLE);
		return 0;
	}
	if (netns_inum && inum != netns_inum)
		return 0;

	__u64 key = (__u64)sk;
	// A socket freed before its SYN-ACK came may be this one's memory.
	bpf_map_delete_elem(&arrivals, &key);
	struct start s = {
		.ts = bpf_ktime_get_ns(),
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.netns = inum,
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
		.kind = KIND_FIRST,
	};
	struct tuple t;
	__builtin_memset(&t, 0, sizeof(t));
	t.netns = s->netns;
	bpf_map_delete_elem(&starts, &key);
	if (bpf_ringbuf_output(&events, &e, sizeof(e), 0) < 0)
		count(COUNT_LOST);
	else
		count(COUNT_TIMED);

	// The way back: remember the SYN's tuple for its SYN-ACK.
	if (syn_tuple(skb, &t) < 0) {
		count(COUNT_UNPARSED);
		return 0;
	}
	struct flight f = {
		.sk = key,
		.syn_sent_ns = e.start_ns,
		.tgid = e.tgid,
	};
	bpf_map_update_elem(&tuples, &t, &f, BPF_ANY);
	return 0;
}

SEC("raw_tracepoint/netif_receive_skb")
int synack_arrived(struct bpf_raw_tracepoint_args *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx->args[0];
	struct net_device *dev = 0;
	__u32 inum = 0;
	if (bpf_probe_read_kernel(&dev, sizeof(dev), &skb->dev) < 0 || !dev ||
	    netns_of(&dev->nd_net, &inum) < 0) {
		count(COUNT_UNREADABLE);
		return 0;
	}
	if (netns_inum && inum != netns_inum)
		return 0;

	struct tuple t;
	__builtin_memset(&t, 0, sizeof(t));
	t.netns = inum;
	int r = synack_tuple(skb, &t);
	if (r < 0)
		count(COUNT_UNPARSED);
	if (r != 0)
		return 0;
	struct flight *f = bpf_map_lookup_elem(&tuples, &t);
	if (!f)
		return 0;
	struct arrival a = {
		.syn_sent_ns = f->syn_sent_ns,
		.tgid = f->tgid,
	};
	__u64 key = f->sk;
	bpf_map_delete_elem(&tuples, &t);
	a.arrived_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&arrivals, &key, &a, BPF_ANY);
	count(COUNT_ARRIVED);
	return 0;
}

SEC("raw_tracepoint/inet_sock_set_state")
int established(struct bpf_raw_tracepoint_args *ctx)
{
	if ((int)ctx->args[2] != TCP_ESTABLISHED || (int)ctx->args[1] != TCP_SYN_SENT)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 key = ctx->args[0];
	struct arrival *a = bpf_map_lookup_elem(&arrivals, &key);
	if (!a)
		return 0;
	struct event e = {
		.start_ns = a->syn_sent_ns,
		.span_ns = (__u32)(now - a->arrived_ns),
		.tgid = a->tgid,
		.kind = KIND_RETURN,
	};
	bpf_map_delete_elem(&arrivals, &key);
	if (bpf_ringbuf_output(&events, &e, sizeof(e), 0) < 0) {
		count(COUNT_LOST);
		return 0;
	}
	count(COUNT_RETURNED);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
