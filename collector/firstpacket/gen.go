package firstpacket

// The BPF objects are generated and committed, so that `go build` needs no
// clang; `make generate` regenerates them with Debian's clang-16, and `make
// verify` fails when the committed ones differ from a fresh generation.
//go:generate go tool bpf2go -cc clang-16 -strip llvm-strip-16 -cflags "-O2 -g -Wall -Werror" -target bpfel -type event firstpacket firstpacket.bpf.c
