package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/topfreegames/pitaya"
	"github.com/topfreegames/pitaya/component"
	"github.com/topfreegames/pitaya/constants"
	pitayaerrors "github.com/topfreegames/pitaya/errors"
	"github.com/topfreegames/pitaya/session"
)

// roomGroup is the group every member joins; the server type is the same word.
const roomGroup = "room"

// maxNickChars is the longest nick accepted, in characters, as in examples/chat.
const maxNickChars = 64

// Room is the "room" component: the join request and the message notify.
type Room struct {
	component.Base
}

// JoinRequest is the body of room.room.join.
type JoinRequest struct {
	Name string `json:"name"`
}

// JoinResponse answers a successful join.
type JoinResponse struct {
	Code   int    `json:"code"`
	Result string `json:"result"`
}

// Members is the onMembers push.
type Members struct {
	Members []string `json:"members"`
}

// NewUser is the onNewUser push.
type NewUser struct {
	Content string `json:"content"`
}

func badRequest(format string, args ...interface{}) error {
	return pitaya.Error(fmt.Errorf(format, args...), pitayaerrors.ErrBadRequestCode)
}

// Join binds the session to the nick, adds it to the room and tells everyone.
func (r *Room) Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error) {
	name := req.Name
	if strings.TrimSpace(name) == "" {
		return nil, badRequest("join needs a non-empty string \"name\"")
	}
	if utf8.RuneCountInString(name) > maxNickChars {
		return nil, badRequest("name longer than %d characters", maxNickChars)
	}

	s := pitaya.GetSessionFromCtx(ctx)
	if s.UID() == "" {
		if err := replaceOlderSession(ctx, name); err != nil {
			return nil, pitaya.Error(err, pitayaerrors.ErrInternalCode)
		}
	}
	if err := s.Bind(ctx, name); err != nil {
		if errors.Is(err, constants.ErrSessionAlreadyBound) {
			return nil, badRequest("this connection has already joined")
		}
		return nil, pitaya.Error(err, pitayaerrors.ErrInternalCode)
	}
	// Kicking an older session of this nick normally dropped its membership; if not,
	// the membership passes to this session.
	in, err := pitaya.GroupContainsMember(ctx, roomGroup, name)
	if err == nil && !in {
		err = pitaya.GroupAddMember(ctx, roomGroup, name)
	}
	if err != nil {
		return nil, pitaya.Error(err, pitayaerrors.ErrInternalCode)
	}
	s.OnClose(func() { leave(s) })

	members, err := pitaya.GroupMembers(ctx, roomGroup)
	if err != nil {
		return nil, pitaya.Error(err, pitayaerrors.ErrInternalCode)
	}
	if err := s.Push("onMembers", &Members{Members: members}); err != nil {
		return nil, pitaya.Error(err, pitayaerrors.ErrInternalCode)
	}
	others := make([]string, 0, len(members))
	for _, m := range members {
		if m != name {
			others = append(others, m)
		}
	}
	news := &NewUser{Content: "New user: " + name}
	// Members who left meanwhile cannot be pushed to; that is no failure of the join.
	_, _ = pitaya.SendPushToUsers("onNewUser", news, others, roomGroup)
	return &JoinResponse{Code: 0, Result: "success"}, nil
}

// Message pushes the body, whatever JSON it is, to every member.
func (r *Room) Message(ctx context.Context, msg *interface{}) {
	members, err := pitaya.GroupMembers(ctx, roomGroup)
	if err != nil {
		return
	}
	_, _ = pitaya.SendPushToUsers("onMessage", *msg, members, roomGroup)
}

// leave removes a closing member from the room unless a newer session holds its nick.
func leave(s *session.Session) {
	uid := s.UID()
	if other := session.GetSessionByUID(uid); other != nil && other != s {
		return
	}
	_ = pitaya.GroupRemoveMember(context.Background(), roomGroup, uid)
}

// replaceOlderSession kicks the session that holds uid, if any, and waits until Go
// Pitaya has forgotten it. Its UniqueSession module kicks at bind time, but v1 drops a
// uid from its index when the kicked connection's read loop ends, whichever session
// holds the uid by then; a session bound before that could no longer be pushed to.
func replaceOlderSession(ctx context.Context, uid string) error {
	old := session.GetSessionByUID(uid)
	if old == nil {
		return nil
	}
	// A kick fails when the old connection is already closing; it goes away all the same.
	_ = old.Kick(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for session.GetSessionByUID(uid) == old {
		if time.Now().After(deadline) {
			return fmt.Errorf("the older session of %q did not close", uid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
