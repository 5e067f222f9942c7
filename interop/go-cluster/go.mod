module pitaya-rs/interop/go-cluster

go 1.15

require (
	github.com/sirupsen/logrus v1.8.1
	github.com/spf13/viper v1.7.1
	github.com/topfreegames/pitaya v1.1.8
)
