package goclient

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topfreegames/pitaya/client"
	"github.com/topfreegames/pitaya/conn/message"
)

var nicks int64

// nick returns a nick no other test uses, since every test shares one room.
func nick(who string) string {
	return fmt.Sprintf("%s-%d", who, atomic.AddInt64(&nicks, 1))
}

// join joins c as name and checks the success answer and that onMembers lists name.
func join(t *testing.T, c *client.Client, name string) []string {
	t.Helper()
	id := request(t, c, "room.room.join", map[string]string{"name": name})
	var members []string
	answered := false
	for members == nil || !answered {
		m := next(t, c, "join answer and onMembers", func(m *message.Message) bool {
			return (m.Type == message.Response && m.ID == id) ||
				(m.Type == message.Push && m.Route == "onMembers")
		})
		if m.Type == message.Response {
			if m.Err {
				t.Fatalf("join as %s: error %s", name, m.Data)
			}
			want := `{"code":0,"result":"success"}`
			if got := normalize(t, m.Data); got != want {
				t.Fatalf("join as %s: answered %s, want %s", name, got, want)
			}
			answered = true
			continue
		}
		var body struct {
			Members []string `json:"members"`
		}
		if err := json.Unmarshal(m.Data, &body); err != nil || body.Members == nil {
			t.Fatalf("join as %s: onMembers %s is not {\"members\": [...]}", name, m.Data)
		}
		members = body.Members
	}
	if count(members, name) != 1 {
		t.Fatalf("join as %s: onMembers %v lists the joiner %d times", name, members,
			count(members, name))
	}
	return members
}

func count(members []string, name string) int {
	n := 0
	for _, m := range members {
		if m == name {
			n++
		}
	}
	return n
}

// chat joins two members over the given transports and has each talk to the other.
func chat(t *testing.T, first, second transport) {
	alice, bob := nick("alice"), nick("bob")
	a := dial(t, first)
	join(t, a, alice)
	b := dial(t, second)
	if members := join(t, b, bob); count(members, alice) != 1 {
		t.Fatalf("%s's onMembers %v does not list %s once", bob, members, alice)
	}
	push(t, a, "onNewUser", map[string]string{"content": "New user: " + bob})

	for _, from := range []struct {
		c    *client.Client
		name string
	}{{b, bob}, {a, alice}} {
		body := map[string]string{"name": from.name, "content": "hello from " + from.name}
		if err := from.c.SendNotify("room.room.message", encode(t, body)); err != nil {
			t.Fatalf("notify from %s: %v", from.name, err)
		}
		push(t, a, "onMessage", body)
		push(t, b, "onMessage", body)
	}
}

func TestJoinAndChatOverTCP(t *testing.T)       { chat(t, tcp, tcp) }
func TestJoinAndChatOverWebSocket(t *testing.T) { chat(t, ws, ws) }
func TestTCPAndWebSocketShareTheRoom(t *testing.T) {
	chat(t, tcp, ws)
}

// errorAnswer sends a request and returns its error payload; it fails on success.
func errorAnswer(t *testing.T, c *client.Client, route string, body interface{}) (string, string) {
	t.Helper()
	m := response(t, c, request(t, c, route, body))
	if !m.Err {
		t.Fatalf("%s %v: answered success %s, want an error", route, body, m.Data)
	}
	var e struct {
		Code string `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(m.Data, &e); err != nil {
		t.Fatalf("%s: error payload %s is not JSON: %v", route, m.Data, err)
	}
	return e.Code, e.Msg
}

func TestBadJoinsAnswerPIT400(t *testing.T) {
	for _, tr := range []transport{tcp, ws} {
		c := dial(t, tr)
		for _, body := range []interface{}{
			map[string]string{"name": ""},
			map[string]int{"name": 7},
			map[string]string{"nick": "x"},
		} {
			code, msg := errorAnswer(t, c, "room.room.join", body)
			if code != "PIT-400" || msg == "" {
				t.Errorf("%s join %v: %s %q, want PIT-400 with a message", tr, body, code, msg)
			}
		}
		// The failed joins left the connection usable.
		join(t, c, nick("after-errors"))
	}
}

func TestUnknownRouteAnswersPIT404(t *testing.T) {
	c := dial(t, tcp)
	code, msg := errorAnswer(t, c, "room.room.nothere", map[string]string{})
	if code != "PIT-404" || msg == "" {
		t.Fatalf("unknown route: %s %q, want PIT-404 with a message", code, msg)
	}
}

func TestSecondJoinOnOneConnectionAnswersPIT400(t *testing.T) {
	c := dial(t, ws)
	join(t, c, nick("twice"))
	code, _ := errorAnswer(t, c, "room.room.join", map[string]string{"name": nick("again")})
	if code != "PIT-400" {
		t.Fatalf("second join: %s, want PIT-400", code)
	}
}

// A long repetitive message is one the server compresses; the Go client must inflate it.
func TestLongMessageArrivesIntact(t *testing.T) {
	for _, tr := range []transport{tcp, ws} {
		c := dial(t, tr)
		name := nick("long")
		join(t, c, name)
		body := map[string]string{"name": name, "content": strings.Repeat("pitaya ", 1200)}
		if err := c.SendNotify("room.room.message", encode(t, body)); err != nil {
			t.Fatal(err)
		}
		push(t, c, "onMessage", body)
	}
}

func TestNickJoiningAgainReplacesTheOldConnection(t *testing.T) {
	name := nick("moving")
	old := dial(t, tcp)
	join(t, old, name)
	watcher := dial(t, ws)
	join(t, watcher, nick("watcher"))

	fresh := dial(t, ws)
	join(t, fresh, name)
	body := map[string]string{"name": name, "content": "from the new connection"}
	if err := fresh.SendNotify("room.room.message", encode(t, body)); err != nil {
		t.Fatal(err)
	}
	push(t, watcher, "onMessage", body)
	// The Go client has no close event: it only clears its connected flag.
	waitFor(t, "the old connection to close", func() bool { return !old.ConnectedStatus() })
	later := dial(t, tcp)
	if members := join(t, later, nick("later")); count(members, name) != 1 {
		t.Fatalf("a later joiner sees %s %d times in %v", name, count(members, name), members)
	}
}

// waitFor polls cond until it holds; it fails the test after the usual wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The Go client sends heartbeats at the interval the handshake announced and ignores the
// server's; the chat must take them as liveness and keep the client past its idle limit.
func TestGoHeartbeatsKeepTheClientConnected(t *testing.T) {
	c := dial(t, tcp)
	name := nick("patient")
	join(t, c, name)
	// The chat closes a client silent for over two intervals; outlast three.
	time.Sleep(3*heartbeat + heartbeat/2)
	if !c.ConnectedStatus() {
		t.Fatal("the chat closed a client that sent heartbeats")
	}
	body := map[string]string{"name": name, "content": "still here"}
	if err := c.SendNotify("room.room.message", encode(t, body)); err != nil {
		t.Fatal(err)
	}
	push(t, c, "onMessage", body)
}
