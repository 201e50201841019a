// Emits zap's console encoder output. With no argument: the development config (caller column, no
// logger-name column), one Named logger and one logger without caller. With "production": the
// production config switched to the console encoding (epoch seconds, lowercase levels).
package main

import (
	"errors"
	"os"

	"go.uber.org/zap"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "production" {
		cfg := zap.NewProductionConfig()
		cfg.Encoding = "console"
		prod, _ := cfg.Build()
		prod.Info("starting worker", zap.Int("pool_size", 10))
		prod.Error("ping failed", zap.Error(errors.New("driver: bad connection")))
		prod.Warn("retrying", zap.Int("attempt", 2))
		prod.Sync()
		return
	}
	dev, _ := zap.NewDevelopment()
	dev.Info("starting worker", zap.Int("pool_size", 10))
	dev.Error("query failed", zap.Error(errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")))
	dev.Named("db").Warn("slow checkout", zap.Duration("waited", 2500000000))
	noCaller, _ := zap.NewDevelopment(zap.WithCaller(false))
	noCaller.Error("failed to connect to `host=db user=app database=app`: server error (FATAL: sorry, too many clients already (SQLSTATE 53300))")
	noCaller.Info("pool closed", zap.Int("open", 0))
	dev.Sync()
}
