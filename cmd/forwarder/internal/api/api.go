// Package api serves the forwarder's operational HTTP endpoints: /metrics
// (Prometheus text format), /healthz (the process is alive) and /readyz
// (every component is healthy: 200, otherwise 503 with the reasons as JSON).
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness reports whether the pipeline is ready and, if not, why
// (component id → reason).
type Readiness interface {
	Ready() (bool, map[string]string)
}

// Detailer is optionally implemented by a Readiness whose /readyz body
// carries more than readiness (cluster mode: membership and owned
// sources). Its keys are added to the body; nil adds nothing.
type Detailer interface {
	Details() map[string]any
}

// Server is the running HTTP endpoint.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Handler returns the mux with the three endpoints.
func Handler(gatherer prometheus.Gatherer, ready Readiness) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, problems := ready.Ready()
		w.Header().Set("Content-Type", "application/json")
		body := map[string]any{"ready": ok}
		if d, isDetailer := ready.(Detailer); isDetailer {
			for k, v := range d.Details() {
				if k != "ready" && k != "problems" {
					body[k] = v
				}
			}
		}
		if !ok {
			body["problems"] = problems
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	return mux
}

// Start listens on address and serves in the background.
func Start(address string, gatherer prometheus.Gatherer, ready Readiness, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("api.address %s: %w", address, err)
	}
	s := &Server{ln: ln, srv: &http.Server{
		Handler:           Handler(gatherer, ready),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server stopped", "error", err)
		}
	}()
	log.Info("api listening", "address", ln.Addr().String())
	return s, nil
}

// Addr returns the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the server.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
