package app

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/loadgen"
)

func newServeCmd(g *globals) *cobra.Command {
	var (
		listen string
		cfg    loadgen.ServerConfig
	)
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR",
		Short: "Serve the HTTP/1.1 backend that answers kpbench load",
		Long: `serve answers every request with 200 and a fixed body (612 bytes by default,
the size of nginx's default page). It is what backend pods run.

It speaks HTTP/1.1 directly (no general-purpose server in the way): keep-alive
by default, pipelined requests answered in order, "Connection: close" and
HTTP/1.0 honoured. With --max-requests-per-conn N it answers the Nth request
of a connection with "Connection: close" and closes it, as nginx's
keepalive_requests does (the published keepalive experiments use 100). It
stops gracefully on SIGINT or SIGTERM.

A request with a Kpbench-Backend header gets an answer naming the backend in
the same header: the local address (IP:port) of the connection it accepted,
which a client behind a Service's ClusterIP cannot know otherwise (kpbench
load --requests-log asks for it and records it). Other requests get the
usual answer, byte for byte.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := loadgen.NewServer(cfg)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", listen, err)
			}
			g.logger.Info("serving", "addr", l.Addr().String(), "bodyBytes", cfg.BodyBytes, "maxRequestsPerConn", cfg.MaxRequestsPerConn)
			err = srv.Serve(cmd.Context(), l)
			g.logger.Info("stopped", "requests", srv.Requests(), "connections", srv.Connections())
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", ":8080", "address to listen on")
	cmd.Flags().IntVar(&cfg.BodyBytes, "body-bytes", loadgen.DefaultBodyBytes, "response body size in bytes")
	cmd.Flags().IntVar(&cfg.MaxRequestsPerConn, "max-requests-per-conn", 0, "close a connection after this many requests (0: no limit)")
	return cmd
}
