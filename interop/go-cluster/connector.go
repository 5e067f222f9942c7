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
		// v1 drops the uid from its index before this callback runs, whichever session
		// holds it, so a newer connection with the same nick cannot be told apart here.
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
