package testenv

import (
	"context"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
)

func newDockerNetwork(ctx context.Context) (*testcontainers.DockerNetwork, error) {
	return tcnetwork.New(ctx)
}

// withNetwork attaches a container to nw under alias.
func withNetwork(nw *testcontainers.DockerNetwork, alias string) testcontainers.CustomizeRequestOption {
	return tcnetwork.WithNetwork([]string{alias}, nw)
}

// withStopSignal makes a container stop with SIGINT, which is a fast shutdown for PostgreSQL
// (SIGTERM waits for clients to leave); docker import cannot set STOPSIGNAL on the image.
func withStopSignal() testcontainers.CustomizeRequestOption {
	return testcontainers.WithConfigModifier(func(c *container.Config) { c.StopSignal = "SIGINT" })
}

func endpointWithAlias(alias string) *network.EndpointSettings {
	return &network.EndpointSettings{Aliases: []string{alias}}
}
