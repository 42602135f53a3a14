// Package bus names every NATS subject berth uses and the messages sent on
// them. It is the one place a reader looks to learn who talks to whom:
//
//	apigw      --request-->  berth.v1.containers.<node>.<verb>   supervisor (queue group)
//	apigw      --request-->  berth.v1.images.<node>.<verb>       supervisor
//	apigw      --request-->  berth.v1.system.<node>.<verb>       supervisor
//	apigw      --request-->  berth.v1.volumes.<node>.<verb>      supervisor
//	apigw      <-request-->  _INBOX.<…>  supervisor (docker cp / export transfers, natsbus.Download, Upload)
//	apigw      --request-->  berth.v1.networks.<node>.<verb>     supervisor
//	supervisor --request-->  berth.v1.shim.<node>.<id>.<verb>    one shim
//	shim       --request-->  berth.v1.reports.<node>.<id>.<kind> supervisor (exit, oom)
//	shim       --publish-->  berth.v1.io.<node>.<id>.out         apigw (attach)
//	apigw      --request-->  berth.v1.io.<node>.<id>.in          shim (stdin)
//	supervisor --publish-->  berth.v1.events.<node>.<type>.<action>  JetStream stream BERTH_EVENTS
//
// Subjects carry a version so that a v2 can run beside v1 during an upgrade.
// Every token a caller supplies (node, container ID) is checked by Token so it
// cannot add or wildcard subject levels.
package bus

import (
	"fmt"
	"strings"
)

// Version is the protocol version carried in every subject.
const Version = "v1"

const prefix = "berth." + Version

// Areas of the command subjects.
const (
	AreaContainers = "containers"
	AreaImages     = "images"
	AreaSystem     = "system"
	AreaVolumes    = "volumes"
	AreaNetworks   = "networks"
)

// Verbs of the container commands (apigw → supervisor).
const (
	VerbCreate  = "create"
	VerbStart   = "start"
	VerbStop    = "stop"
	VerbKill    = "kill"
	VerbRestart = "restart"
	VerbRemove  = "remove"
	VerbRename  = "rename"
	VerbInspect = "inspect"
	VerbList    = "list"
	VerbPrune   = "prune"
	VerbLogs    = "logs"
	// docker cp, diff and export
	VerbArchiveStat = "archive-stat"
	VerbArchiveGet  = "archive-get"
	VerbArchivePut  = "archive-put"
	VerbExport      = "export"
	VerbChanges     = "changes"
)

// Verbs of the image commands (apigw → supervisor).
const (
	VerbImageList    = "list"
	VerbImageInspect = "inspect"
	VerbImageTag     = "tag"
	VerbImageRemove  = "remove"
	VerbImageImport  = "import"
)

// Verbs of the volume commands (apigw → supervisor).
const (
	VerbVolumeCreate  = "create"
	VerbVolumeList    = "list"
	VerbVolumeInspect = "inspect"
	VerbVolumeRemove  = "remove"
	VerbVolumePrune   = "prune"
)

// Verbs of the system commands (apigw → supervisor).
const (
	VerbInfo = "info"
	VerbPing = "ping"
)

// Verbs of the network commands (apigw → supervisor).
const (
	VerbNetworkCreate     = "create"
	VerbNetworkList       = "list"
	VerbNetworkInspect    = "inspect"
	VerbNetworkRemove     = "remove"
	VerbNetworkConnect    = "connect"
	VerbNetworkDisconnect = "disconnect"
	VerbNetworkPrune      = "prune"
)

// Verbs a shim answers (supervisor → shim).
const (
	ShimStart    = "start"
	ShimKill     = "kill"
	ShimState    = "state"
	ShimShutdown = "shutdown"
	ShimResize   = "resize"
)

// Kinds of shim reports (shim → supervisor).
const (
	ReportExit = "exit"
	ReportOOM  = "oom"
)

// EventsStream is the JetStream stream that keeps every event for replay
// (`docker events --since`).
const EventsStream = "BERTH_EVENTS"

// UploadsBucket is the JetStream object store through which apigw hands large
// request bodies (image tarballs) to the supervisor: NATS messages are small,
// objects are chunked and flow-controlled.
const UploadsBucket = "berth-uploads"

// Headers used on the IO subjects.
const (
	HeaderStream = "Berth-Stream" // "stdout" or "stderr"
	HeaderEOF    = "Berth-Eof"    // "1": the stream (stdout+stderr, or stdin) is closed
	// On the transfer subjects (natsbus.Download and Upload): the error
	// that ended a transfer, and a receiver's request to stop one.
	HeaderError  = "Berth-Error"
	HeaderCancel = "Berth-Cancel"
)

// Token checks that s can be used as one subject token.
func Token(s string) error {
	if s == "" || strings.ContainsAny(s, ".*> \t\r\n") {
		return fmt.Errorf("invalid subject token %q", s)
	}
	return nil
}

// Command is the subject of a command to the supervisor of node.
func Command(area, node, verb string) string {
	return prefix + "." + area + "." + node + "." + verb
}

// CommandsAll matches every command to the supervisor of node.
func CommandsAll(node string) []string {
	return []string{
		prefix + "." + AreaContainers + "." + node + ".*",
		prefix + "." + AreaImages + "." + node + ".*",
		prefix + "." + AreaSystem + "." + node + ".*",
		prefix + "." + AreaVolumes + "." + node + ".*",
		prefix + "." + AreaNetworks + "." + node + ".*",
	}
}

// QueueGroup is the queue group the supervisors of node share, so that a
// command is handled once even if two supervisors overlap during a restart.
func QueueGroup(node string) string { return "supervisor." + node }

// Shim is the subject of a command to the shim of container id.
func Shim(node, id, verb string) string { return prefix + ".shim." + node + "." + id + "." + verb }

// ShimAll matches every command to the shim of container id.
func ShimAll(node, id string) string { return prefix + ".shim." + node + "." + id + ".*" }

// Report is the subject a shim reports on.
func Report(node, id, kind string) string {
	return prefix + ".reports." + node + "." + id + "." + kind
}

// ReportsAll matches every shim report on node.
func ReportsAll(node string) string { return prefix + ".reports." + node + ".>" }

// IOOut carries a container's stdout and stderr (shim → attached clients).
func IOOut(node, id string) string { return prefix + ".io." + node + "." + id + ".out" }

// IOIn carries a container's stdin (attached client → shim).
func IOIn(node, id string) string { return prefix + ".io." + node + "." + id + ".in" }

// EventSubject is the subject of an event. Actions such as "exec_start: sh" are cut
// at the first colon or space, since subjects cannot hold spaces.
func EventSubject(node, typ, action string) string {
	if i := strings.IndexAny(action, ": "); i >= 0 {
		action = action[:i]
	}
	return prefix + ".events." + node + "." + typ + "." + action
}

// EventsAll matches every event of every node; the events stream binds it.
const EventsAll = prefix + ".events.>"

// EventsNode matches every event of one node.
func EventsNode(node string) string { return prefix + ".events." + node + ".>" }
