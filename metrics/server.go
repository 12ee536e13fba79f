package metrics

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the Server answers scrapes.
const Path = "/metrics"

// Limits of the HTTP server: a scraper gets this long to send its request
// and read the answer, and few scrapes run at once.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	maxInFlight       = 4
)

// Server serves a Gatherer's metrics over HTTP at Path. Create it with
// Listen, run Serve, stop it with Close.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds the TCP address addr (host:port) and returns a Server for
// g. The error says in one line why the address cannot be used (in use, not
// local, unresolvable).
func Listen(addr string, g prometheus.Gatherer, logf func(format string, args ...any)) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, listenError(addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            printer(logf),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxInFlight,
		Timeout:             writeTimeout - time.Second,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "vxland: metrics are at %s\n", Path)
	})
	var errLog *log.Logger
	if logf != nil {
		errLog = log.New(printer(logf), "metrics: ", 0)
	}
	return &Server{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errLog,
	}}, nil
}

// listenError turns a listen failure into one line that names the address:
// "metrics: 127.0.0.1:9477 is already in use".
func listenError(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("metrics: %s is already in use", addr)
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return fmt.Errorf("metrics: cannot listen on %s: %w", addr, se.Err)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return fmt.Errorf("metrics: cannot listen on %s: %w", addr, oe.Err)
	}
	return fmt.Errorf("metrics: cannot listen on %s: %w", addr, err)
}

// Addr returns the address the Server listens on (with the port the
// kernel chose when the address asked for port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers requests until Close; it returns nil after Close.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops listening and closes every connection at once. It is safe to
// call more than once, and before Serve.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.ln.Close() // in case Serve never ran
	return err
}

// printer adapts a printf-style function to promhttp's Logger and to an
// io.Writer; nil discards.
type printer func(format string, args ...any)

// Println logs args on one line.
func (p printer) Println(args ...any) {
	if p != nil {
		p("metrics: %s", trimNewline([]byte(fmt.Sprintln(args...))))
	}
}

// Write logs b as one line.
func (p printer) Write(b []byte) (int, error) {
	if p != nil {
		p("%s", trimNewline(b))
	}
	return len(b), nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	return b
}
