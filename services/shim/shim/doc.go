// Package shim is berth-shim: the process that holds one container, the
// way containerd-shim does for containerd.
//
// # Starting
//
// The supervisor writes a bus.ShimConfig to <exec-root>/shims/<id>/shim.json
// and runs
//
//	berth-shim start --config <exec-root>/shims/<id>/shim.json
//
// The launcher re-executes itself as `berth-shim daemon` in a new session
// (stdio on <stateDir>/shim.log), waits until the daemon has run
//
//	<runtime> --root <runtimeRoot> --log <stateDir>/runtime.log --log-format json \
//	    create --bundle <bundle> --pid-file <stateDir>/init.pid [--console-socket …] <id>
//
// and subscribed on the bus, then prints one bus.ShimStarted line
// ({"pid":<daemon>,"initPid":<container init>}) and exits 0. The daemon is
// not the caller's child once the launcher has exited. On failure the
// launcher prints "berth-shim: <error>" (for a runtime error, the runtime's
// own message, e.g. `OCI runtime create failed: runc create failed: unable
// to start container process: exec: "/x": stat /x: no such file or
// directory`) on stderr, exits 1, and nothing is left: no daemon, no
// runtime container.
//
// The supervisor itself skips the launcher (one exec less per start): it
// runs `berth-shim daemon --config …` directly in a new session, with the
// daemon's stdio on shim.log and a pipe on fd 3, on which the daemon writes
// one bus.ShimReady line once the container is created — or failed, with
// Error and Stage ("create" or "start") set, after cleaning up. The
// supervisor reaps the daemon by pid when it exits (SIGCHLD); after a
// supervisor restart the daemon is nobody's child but init's, as with the
// launcher.
//
// With ShimConfig.StartOnCreate the daemon also starts the container
// (`runtime start`) before it reports ready, and says so
// (ShimStarted.Started): no ShimStart round trip on the bus. With
// ShimConfig.LoopbackUp it first brings up "lo" in the container's network
// namespace (between create and start). The bus connection is dialled while
// the runtime creates the container.
//
// # The daemon
//
// It is a child subreaper (the container's init becomes its child), reaps
// everything through package reaper, and answers on bus.ShimAll(node, id):
//
//	start    → runtime start; bus.ShimStartResponse{Pid}; NotModified if running, Conflict if exited
//	kill     bus.ShimKillRequest → runtime kill [--all] id SIG (0 means SIGKILL); Conflict if exited
//	state    → bus.ShimStateResponse{Pid, Status: created|running|stopped}
//	resize   bus.ShimResizeRequest → TIOCSWINSZ on the pty (no-op without a tty);
//	         with ExecID, on that exec process's pty
//	exec     bus.ShimExecRequest → runtime exec --process <stateDir>/exec-<id>.json
//	         --detach --pid-file …: answers bus.ShimExecResponse{Pid} once the
//	         process runs (Conflict when the container is not running or paused);
//	         its output goes to bus.ExecIOOut (not to the log), its stdin comes
//	         from bus.ExecIOIn; at its exit (output drained, 2s at most) it sends
//	         bus.ExecExitReport on bus.Report(node, id, "exec_exit") and, once
//	         the supervisor has taken it, the EOF on bus.ExecIOOut. A Probe
//	         (healthcheck) answers only at the end, with exit code and output.
//	shutdown → kills and deletes the container if it is still there, sends no
//	           exit report (or stops retrying one), replies when done, exits.
//
// Output (stdout/stderr, or the pty) goes to the json-file log (package
// jsonlog) and to bus.IOOut with header bus.HeaderStream; once the container
// has exited and its output is drained, one message with bus.HeaderEOF "1"
// follows. Stdin arrives as requests on bus.IOIn, each acknowledged after
// the write; an EOF message closes the container's stdin when StdinOnce is
// set (Docker's rule) and there is no tty.
//
// When the init exits the daemon records exit code (128+signal when
// killed), time and OOM (memory cgroup), drains the output, publishes EOF,
// writes bus.ExitReport to <stateDir>/exit.json (atomically, without fsync:
// the exec root is volatile), sends the report to bus.Report(node, id,
// "exit") and retries (backoff to 2s, for ever, through bus outages) until a
// reply without error. `runtime delete --force` runs meanwhile, from the
// moment the init is reaped (after the OOM check, before the cgroup goes);
// the daemon waits for it before it removes exit.json and exits, and a
// shutdown request is answered only then. A supervisor that
// finds exit.json with no live shim (shim.pid) should take the report from
// the file. A previous exit.json in the state directory is removed when a
// new shim starts there.
//
// On the bus the daemon is the user natsUser of its shim.json (0600), which
// the embedded server lets publish only bus.Report(node, id, …), bus.IOOut
// (node, id) and answers, and subscribe only to bus.ShimAll(node, id),
// bus.IOIn(node, id) and its own inbox prefix bus.ShimInboxPrefix(node, id).
//
// The daemon speaks to the bus with package bus/natslite, not nats.go (one
// shim per container: see docs/benchmarks.md), which has no TLS: the bus is
// the node's own NATS server on the loopback.
//
// Metrics (Prometheus text) are served on a loopback port written to
// <stateDir>/metrics.addr.
package shim
