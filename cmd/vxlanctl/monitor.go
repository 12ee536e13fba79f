package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/vxland/vxland/control"
)

// monitor prints the events of the daemon serving cmd.dev (or of every
// daemon in the run directory) until interrupted or until every stream
// ends. Lines from several daemons are interleaved whole.
func monitor(cmd *command, stdout, stderr io.Writer) error {
	var clients []*control.Client
	if cmd.dev != "" || cmd.socket != "" {
		c, err := connect(cmd)
		if err != nil {
			return err
		}
		clients = append(clients, c)
	} else {
		socks, err := control.FindSocketsIn(cmd.dir)
		if err != nil {
			return err
		}
		for _, p := range socks {
			c, err := control.Dial(p)
			if err != nil {
				fmt.Fprintf(stderr, "vxlanctl: %v\n", err)
				continue
			}
			clients = append(clients, c)
		}
		if len(clients) == 0 {
			return fmt.Errorf("no vxland daemon found in %s", cmd.dir)
		}
	}
	done := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	var once sync.Once
	stop := func() { once.Do(func() { close(done) }) }
	go func() {
		select {
		case <-sigs:
			stop()
		case <-done:
		}
	}()
	var mu sync.Mutex
	emit := func(e control.MonitorEvent) error {
		mu.Lock()
		defer mu.Unlock()
		if cmd.json {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			_, err = stdout.Write(append(b, '\n'))
			return err
		}
		return control.FormatEvent(stdout, e)
	}
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Monitor(cmd.dev, done, emit)
			if err != nil {
				stop() // stdout gone, or a daemon refused: end the others too
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
