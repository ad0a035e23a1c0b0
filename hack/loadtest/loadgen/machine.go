package loadgen

import (
	"os"
	"runtime"
	"time"

	"github.com/databridge-io/databridge/hack/loadtest/procstat"
)

// machineSample is the load tool's own CPU time and the machine's busy time.
type machineSample struct {
	self, busy time.Duration
	err        error
}

func sampleMachine() machineSample {
	self, err := procstat.Proc{PID: os.Getpid()}.CPU()
	if err != nil {
		return machineSample{err: err}
	}
	m, err := procstat.ReadMachine("")
	return machineSample{self: self.Total(), busy: m.Busy, err: err}
}

// machineResult is where the machine's CPU went over a window of seconds.
func machineResult(start, end machineSample, window float64) *MachineResult {
	m := &MachineResult{CPUs: runtime.NumCPU()}
	switch {
	case start.err != nil:
		m.Error = start.err.Error()
	case end.err != nil:
		m.Error = end.err.Error()
	case window <= 0:
		m.Error = "not measured: the run ended before the measurement window"
	default:
		m.LoadToolCores = (end.self - start.self).Seconds() / window
		m.BusyCores = (end.busy - start.busy).Seconds() / window
	}
	return m
}
