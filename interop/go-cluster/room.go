package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/topfreegames/pitaya"
	"github.com/topfreegames/pitaya/component"
	"github.com/topfreegames/pitaya/constants"
	"github.com/topfreegames/pitaya/groups"
	"github.com/topfreegames/pitaya/protos"
)

// The contract of examples/cluster/src/lib.rs: group name, nick limit, frontend type.
const (
	roomGroup    = "room"
	maxNickChars = 64
	frontendType = "connector"
)

// Room serves `room.room.join` (request) and `room.room.message` (notify).
// v1 registers only exported component types.
type Room struct {
	component.Base
}

// Chat serves the remote `room.chat.leave`, called by connectors when a member's
// connection closes.
type Chat struct {
	component.Base
}

type joinAnswer struct {
	Code   int    `json:"code"`
	Result string `json:"result"`
}

func registerRoom() {
	pitaya.Register(&Room{}, component.WithName("room"), component.WithNameFunc(strings.ToLower))
	pitaya.Register(&Session{}, component.WithName("session"),
		component.WithNameFunc(strings.ToLower))
	pitaya.RegisterRemote(&Chat{}, component.WithName("chat"),
		component.WithNameFunc(strings.ToLower))
}

// setupGroups shares membership with every other room server through etcd, in the
// layout the Rust etcd group store uses too.
func setupGroups() error {
	gs, err := groups.NewEtcdGroupService(pitaya.GetConfig(), nil)
	if err != nil {
		return fmt.Errorf("etcd groups: %w", err)
	}
	pitaya.InitGroups(gs)
	return ensureRoom(context.Background())
}

func ensureRoom(ctx context.Context) error {
	err := pitaya.GroupCreate(ctx, roomGroup)
	if err != nil && !errors.Is(err, constants.ErrGroupAlreadyExists) {
		return err
	}
	return nil
}

func badRequest(msg string) error {
	return pitaya.Error(errors.New(msg), "PIT-400")
}

// Join binds the session to the nick, adds it to the room, pushes the member list to
// the joiner and the news to everybody else.
func (r *Room) Join(ctx context.Context, body []byte) (*joinAnswer, error) {
	var arg map[string]interface{}
	_ = json.Unmarshal(body, &arg)
	name, ok := arg["name"].(string)
	if !ok || strings.TrimSpace(name) == "" {
		return nil, badRequest(`join needs a non-empty string "name"`)
	}
	if utf8.RuneCountInString(name) > maxNickChars {
		return nil, badRequest(fmt.Sprintf("name longer than %d characters", maxNickChars))
	}
	s := pitaya.GetSessionFromCtx(ctx)
	if err := s.Bind(ctx, name); err != nil {
		if errors.Is(err, constants.ErrSessionAlreadyBound) {
			return nil, badRequest("this connection has already joined")
		}
		return nil, err
	}

	err := pitaya.GroupAddMember(ctx, roomGroup, name)
	if errors.Is(err, constants.ErrGroupNotFound) {
		// etcd lost its data: the room comes back with the first member who joins.
		if err = ensureRoom(ctx); err == nil {
			err = pitaya.GroupAddMember(ctx, roomGroup, name)
		}
	}
	if err != nil && !errors.Is(err, constants.ErrMemberAlreadyExists) {
		return nil, err
	}
	fmt.Printf("go-cluster: joined the room uid=%s\n", name)
	members, err := pitaya.GroupMembers(ctx, roomGroup)
	if err != nil {
		return nil, err
	}
	if err := s.Push("onMembers", map[string]interface{}{"members": members}); err != nil {
		return nil, err
	}
	others := make([]string, 0, len(members))
	for _, m := range members {
		if m != name {
			others = append(others, m)
		}
	}
	news := map[string]string{"content": "New user: " + name}
	if failed, err := pitaya.SendPushToUsers("onNewUser", news, others, frontendType); err != nil {
		return nil, fmt.Errorf("push to %v: %w", failed, err)
	}
	return &joinAnswer{Code: 0, Result: "success"}, nil
}

// Message forwards the message, bytes unchanged, to every member.
func (r *Room) Message(ctx context.Context, body []byte) {
	fmt.Println("go-cluster: broadcast route=onMessage")
	err := pitaya.GroupBroadcast(ctx, frontendType, roomGroup, "onMessage", body)
	if err != nil {
		fmt.Printf("go-cluster: broadcast failed error=%q\n", err)
	}
}

// Leave takes the user out of the room.
func (c *Chat) Leave(ctx context.Context, msg *protos.KickMsg) (*protos.KickAnswer, error) {
	err := pitaya.GroupRemoveMember(ctx, roomGroup, msg.UserId)
	if err == nil {
		fmt.Printf("go-cluster: left the room uid=%s\n", msg.UserId)
	}
	return &protos.KickAnswer{Kicked: err == nil}, nil
}
