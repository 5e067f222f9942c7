package main

import (
	"context"
	"fmt"
	"time"

	"github.com/topfreegames/pitaya"
	"github.com/topfreegames/pitaya/protos"
	"github.com/topfreegames/pitaya/session"
)

// registerConnector tells a room server when a member's connection closes, as the Rust
// connector does. It has no handlers: every `room.*` route is forwarded.
func registerConnector() {
	session.OnSessionClose(func(s *session.Session) {
		uid := s.UID()
		if uid == "" {
			return
		}
		// Unlike the Rust connector we cannot skip this when a newer connection holds
		// the nick: v1's uid index forgets a uid on any close of a session bound to it.
		go func() {
			arg := &protos.KickMsg{UserId: uid}
			err := pitaya.RPC(context.Background(), "room.chat.leave", &protos.KickAnswer{}, arg)
			if err != nil {
				fmt.Printf("go-cluster: could not tell a room that a member left uid=%s error=%q\n",
					uid, err)
			}
		}()
	})
}

func sleepBriefly() {
	time.Sleep(20 * time.Millisecond)
}
