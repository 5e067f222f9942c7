// Command server is the chat example of pitaya-rs (examples/chat) written on Go Pitaya
// v1: a standalone server of type "room" with the same routes, bodies and pushes, on a
// TCP and a WebSocket acceptor. The interop step of scripts/test.sh runs pitaya-rs's
// client, CLI and conformance suite against it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/viper"
	"github.com/topfreegames/pitaya"
	"github.com/topfreegames/pitaya/acceptor"
	"github.com/topfreegames/pitaya/component"
	"github.com/topfreegames/pitaya/config"
	"github.com/topfreegames/pitaya/groups"
	"github.com/topfreegames/pitaya/serialize/json"
)

func main() {
	tcp := flag.String("tcp", "127.0.0.1:3250", "TCP listen address")
	ws := flag.String("ws", "127.0.0.1:3251", "WebSocket listen address")
	heartbeat := flag.Duration("heartbeat", 30*time.Second,
		"heartbeat interval; Go Pitaya v1 counts it in whole seconds")
	compression := flag.Bool("compression", true,
		"zlib-compress message bodies when shorter (pitaya.handler.messages.compression)")
	flag.Parse()
	if err := run(*tcp, *ws, *heartbeat, *compression); err != nil {
		fmt.Fprintf(os.Stderr, "go-chat: %v\n", err)
		os.Exit(1)
	}
}

func run(tcp, ws string, heartbeat time.Duration, compression bool) error {
	if heartbeat < time.Second {
		return fmt.Errorf("heartbeat %v: v1 needs at least one second", heartbeat)
	}
	// Pitaya v1 logs every packet at its default level, debug.
	log := logrus.New()
	log.SetLevel(logrus.InfoLevel)
	pitaya.SetLogger(log)

	conf := viper.New()
	conf.Set("pitaya.heartbeat.interval", heartbeat)
	conf.Set("pitaya.handler.messages.compression", compression)

	pitaya.SetSerializer(json.NewSerializer())
	pitaya.InitGroups(groups.NewMemoryGroupService(config.NewConfig(conf)))
	if err := pitaya.GroupCreate(context.Background(), roomGroup); err != nil {
		return fmt.Errorf("creating the room group: %w", err)
	}
	pitaya.Register(&Room{},
		component.WithName("room"),
		component.WithNameFunc(strings.ToLower),
	)

	pitaya.AddAcceptor(acceptor.NewTCPAcceptor(tcp))
	pitaya.AddAcceptor(acceptor.NewWSAcceptor(ws))
	pitaya.Configure(true, "room", pitaya.Standalone, map[string]string{}, conf)
	fmt.Printf("go-chat starting: tcp=%s ws=%s\n", tcp, ws)
	pitaya.Start()
	return nil
}
