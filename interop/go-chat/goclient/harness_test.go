// Package goclient tests the Rust chat example (examples/chat) with Go Pitaya v1's own
// client library, over TCP and WebSocket. CHAT_BIN names the chat binary; each run
// starts it once on free ports and stops it at the end.
package goclient

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/topfreegames/pitaya/client"
	"github.com/topfreegames/pitaya/conn/message"
)

// wait bounds every wait, so a missing answer fails the test instead of hanging it.
const wait = 15 * time.Second

// heartbeat is the chat's heartbeat interval, short so that a test can outlast a few.
const heartbeat = time.Second

// tcpAddr and wsAddr are the running chat's acceptors.
var tcpAddr, wsAddr string

func TestMain(m *testing.M) {
	chat, err := startChat()
	if err != nil {
		fmt.Fprintf(os.Stderr, "goclient: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	chat.stop()
	os.Exit(code)
}

// chatProcess is the chat binary under test and everything it has printed.
type chatProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	output strings.Builder
	exited chan struct{}
}

// startChat runs CHAT_BIN on two free ports and returns once it logs "server started".
func startChat() (*chatProcess, error) {
	bin := os.Getenv("CHAT_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "..", "target", "debug", "chat")
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("chat binary (CHAT_BIN): %w; build it with cargo build -p chat", err)
	}
	var err error
	if tcpAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if wsAddr, err = freeAddr(); err != nil {
		return nil, err
	}

	p := &chatProcess{cmd: exec.Command(bin), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(),
		"CHAT_TCP_ADDR="+tcpAddr, "CHAT_WS_ADDR="+wsAddr,
		"CHAT_HEARTBEAT="+heartbeat.String(), "RUST_LOG=info", "NO_COLOR=1")
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}

	started := make(chan struct{})
	go p.collect(out, started)
	select {
	case <-started:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before serving:\n%s", bin, p.printed())
	case <-time.After(wait):
		p.stop()
		return nil, fmt.Errorf("%s did not log \"server started\":\n%s", bin, p.printed())
	}
}

// collect keeps the output and signals started at the readiness line.
func (p *chatProcess) collect(out io.Reader, started chan struct{}) {
	defer close(p.exited)
	lines := bufio.NewScanner(out)
	announced := false
	for lines.Scan() {
		p.mu.Lock()
		p.output.WriteString(lines.Text() + "\n")
		p.mu.Unlock()
		if !announced && strings.Contains(lines.Text(), "server started") {
			announced = true
			close(started)
		}
	}
}

func (p *chatProcess) printed() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// stop interrupts the chat, as Ctrl-C would, and kills it if it lingers.
func (p *chatProcess) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
	}
	_ = p.cmd.Wait()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// transport is how a test client reaches the chat.
type transport string

const (
	tcp transport = "tcp"
	ws  transport = "ws"
)

// dial returns a Go Pitaya client that has done the handshake over tr.
func dial(t *testing.T, tr transport) *client.Client {
	t.Helper()
	c := client.New(logrus.WarnLevel, wait)
	var err error
	if tr == tcp {
		err = c.ConnectTo(tcpAddr)
	} else {
		err = c.ConnectToWS(wsAddr, "/")
	}
	if err != nil {
		t.Fatalf("%s connect: %v", tr, err)
	}
	t.Cleanup(c.Disconnect)
	return c
}

// request sends a request with a JSON body and returns its id.
func request(t *testing.T, c *client.Client, route string, body interface{}) uint {
	t.Helper()
	id, err := c.SendRequest(route, encode(t, body))
	if err != nil {
		t.Fatalf("request %s: %v", route, err)
	}
	return id
}

func encode(t *testing.T, body interface{}) []byte {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// next returns the first message that keep accepts, dropping the others; it fails the
// test when none comes in time.
func next(t *testing.T, c *client.Client, what string, keep func(*message.Message) bool) *message.Message {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-c.MsgChannel():
			if keep(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// response waits for the response to request id.
func response(t *testing.T, c *client.Client, id uint) *message.Message {
	t.Helper()
	return next(t, c, fmt.Sprintf("response %d", id), func(m *message.Message) bool {
		return m.Type == message.Response && m.ID == id
	})
}

// push waits for a push on route whose body equals want, as JSON.
func push(t *testing.T, c *client.Client, route string, want interface{}) {
	t.Helper()
	wanted := normalize(t, encode(t, want))
	next(t, c, fmt.Sprintf("%s push %s", route, wanted), func(m *message.Message) bool {
		return m.Type == message.Push && m.Route == route && normalize(t, m.Data) == wanted
	})
}

// normalize returns JSON re-encoded with sorted keys, so bodies compare by value.
func normalize(t *testing.T, data []byte) string {
	t.Helper()
	var v interface{}
	if err := json.Unmarshal(data, &v); err != nil {
		return "not JSON: " + string(data)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
