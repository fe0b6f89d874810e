package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A proc is a server the comparison started: it stops it at the end.
type proc struct {
	name   string
	log    string // its standard output and error
	cmd    *exec.Cmd
	exited chan struct{} // closed once it has exited
}

// start runs bin with args, its output in <work>/<name>.log.
func start(work, name, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	p := &proc{name: name, log: logf.Name(), cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop ends the process group it started (nginx's workers included).
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitHTTP waits until url, served by p, answers 200. If p exits first,
// or the time runs out, the error ends with p's last output: a server
// that refused its flags says why instead of leaving a bare timeout.
func (p *proc) waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before %s answered: %s", p.name, url, p.lastOutput())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer 200 within %s: %s", url, timeout, p.lastOutput())
}

// lastOutput returns the end of p's log, for an error.
func (p *proc) lastOutput() string {
	out, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	const max = 2000
	if len(out) > max {
		out = out[len(out)-max:]
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return "(no output in " + p.log + ")"
	}
	return strings.TrimSpace(string(out))
}

// cpuOf returns the CPU time (user + system) used so far by pid and its
// live children (nginx's workers), from /proc.
func cpuOf(pid int) time.Duration {
	total := procCPU(pid)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if ppid, ok := parentOf(child); ok && ppid == pid {
			total += procCPU(child)
		}
	}
	return total
}

// statFields returns the fields of /proc/pid/stat after the command name.
func statFields(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

func parentOf(pid int) (int, bool) {
	f := statFields(pid)
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

func procCPU(pid int) time.Duration {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// loadAverage is the first line of /proc/loadavg's three averages.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// nginxConf is a configuration serving dir on 127.0.0.1:port as the
// current user's own process: no daemon, every path in the work directory,
// no access log, keep-alive for as many requests as a run sends.
func nginxConf(work, dir string, port int) string {
	user := ""
	if os.Getuid() == 0 {
		user = "user root root;\n" // the workers read the work directory, which is root's
	}
	return fmt.Sprintf(`%sworker_processes 2;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/nginx.error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000000;
	default_type application/octet-stream;
	client_body_temp_path %[2]s/nginx-body;
	proxy_temp_path %[2]s/nginx-proxy;
	fastcgi_temp_path %[2]s/nginx-fastcgi;
	uwsgi_temp_path %[2]s/nginx-uwsgi;
	scgi_temp_path %[2]s/nginx-scgi;
	server {
		listen 127.0.0.1:%[3]d;
		root %[4]s;
	}
}
`, user, work, port, dir)
}
