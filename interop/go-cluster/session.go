package main

import (
	"context"
	"encoding/json"

	"github.com/topfreegames/pitaya"
	"github.com/topfreegames/pitaya/component"
)

// Session is beyond the chat contract: it lets the tests drive the backend session
// operations of Pitaya's spec 6.6 (`sys.pushsession`, `sys.kick`) from a Go backend
// against a Rust frontend. Routes `room.session.set`, `.get` and `.kick`.
type Session struct {
	component.Base
}

// Set stores every key of the JSON object body in the session and sends the whole
// data map to the frontend.
func (c *Session) Set(ctx context.Context, body []byte) (*joinAnswer, error) {
	var kv map[string]interface{}
	if err := json.Unmarshal(body, &kv); err != nil {
		return nil, badRequest("set needs a JSON object")
	}
	s := pitaya.GetSessionFromCtx(ctx)
	for k, v := range kv {
		if err := s.Set(k, v); err != nil {
			return nil, err
		}
	}
	if err := s.PushToFront(ctx); err != nil {
		return nil, err
	}
	return &joinAnswer{Code: 0, Result: "success"}, nil
}

// Get answers the session data as this backend received it from the frontend.
func (c *Session) Get(ctx context.Context) (*map[string]interface{}, error) {
	data := pitaya.GetSessionFromCtx(ctx).GetData()
	return &data, nil
}

// Kick asks the frontend to kick the session's user.
func (c *Session) Kick(ctx context.Context) (*joinAnswer, error) {
	if err := pitaya.GetSessionFromCtx(ctx).Kick(ctx); err != nil {
		return nil, err
	}
	return &joinAnswer{Code: 0, Result: "success"}, nil
}
