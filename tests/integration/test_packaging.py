"""Running ringproxy as a well-behaved daemon: what it ships for that, and scripts/run.

1. Every example config (config/examples/*.yml and the one in the Kubernetes ConfigMap) passes
   `ringproxy -t -c`; the Kubernetes manifests agree with each other (mount, ports, labels).
2. A ConfigMap update as the kubelet makes it (a new directory, then the `..data` symlink
   swapped by a rename) reloads a running ringproxy; a bad update changes nothing.
3. The logrotate snippet, run by logrotate (or, without it, its postrotate script by hand)
   against a running ringproxy: the log is renamed, not copied, and the next lines go to a new
   file at the path. The snippet's paths are the ones the systemd unit passes to -o and -p.
4. The maintainer scripts in a private mount namespace whose /run and /var/log are empty tmpfs:
   with stub commands that record their calls (the service is enabled, and started only where
   systemd runs; a service that cannot start does not fail the installation; prerm and postrm
   undo what they should), and postinst with the real adduser on a copy of /etc bound over
   /etc. Nothing on this machine changes.
5. scripts/setup (dpkg-query, apt-get and service stubbed) stops only the services of packages
   it installed itself.
6. scripts/run: a port in use stops it before anything starts, naming the port and the
   variable; a run on ports from the environment serves requests, and stopping it (SIGTERM to
   the script, or Ctrl-C to its process group) leaves no process behind.
7. The Debian package: a Release build configured for /usr in a directory of its own under
   /tmp (kept between runs so that only changed files recompile; the first build of the two
   programs takes minutes on two cores), `cmake --install` into a staging directory,
   `cpack -G DEB`, the package inspected with dpkg-deb (files, Depends on the runtime
   libraries, conffiles, maintainer scripts) and unpacked with `dpkg -x`, where the unpacked
   programs run, the packaged config serves a GET from a real redis-server, and the unit passes
   `systemd-analyze verify`. Nothing is installed into the system. Skipped (with the reason)
   without cpack or dpkg-deb.
"""
import fcntl
import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
from harness import RawConn  # noqa: E402

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
PACKAGING = os.path.join(ROOT, "scripts", "packaging")
KUBERNETES = os.path.join(ROOT, "scripts", "kubernetes")
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "config", "examples", "*.yml")))


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def check_config(path):
    return subprocess.run([harness.binary("ringproxy"), "-t", "-c", path], capture_output=True, text=True)


def unit_template():
    return read(os.path.join(PACKAGING, "ringproxy.service.in"))


def exec_start_args(unit_text):
    line = next(l for l in unit_text.splitlines() if l.startswith("ExecStart="))
    return line[len("ExecStart="):].split()


def redis_config(name, listen_port, servers):
    lines = [f"{name}:", f"  listen: 127.0.0.1:{listen_port}", "  redis: true", "  hash: fnv1a_64",
             "  distribution: ketama", "  timeout: 500", "  servers:"]
    lines += [f"    - 127.0.0.1:{port}:1 {server}" for server, port in servers]
    return "\n".join(lines) + "\n"


def session_processes(sid):
    """Pids of the live (not zombie) processes of one session."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry))
    return found


class ExampleConfigTest(unittest.TestCase):
    def test_every_example_config_is_valid(self):
        self.assertGreaterEqual(len(EXAMPLES), 4, EXAMPLES)
        for path in EXAMPLES:
            with self.subTest(config=os.path.basename(path)):
                out = check_config(path)
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                self.assertIn("syntax is ok", out.stdout + out.stderr)

    def test_examples_show_what_they_are_named_for(self):
        memcache = read(os.path.join(ROOT, "config", "examples", "memcache.yml"))
        self.assertRegex(memcache, r"(?m)^  protocol: memcache$")
        vnode = read(os.path.join(ROOT, "config", "examples", "vnode.yml"))
        self.assertRegex(vnode, r"(?m)^  distribution: vnode$")
        # The packaged default: one pool, in front of a local redis-server.
        default = read(os.path.join(ROOT, "config", "examples", "ringproxy.yml"))
        self.assertEqual(len(re.findall(r"(?m)^[a-z]\w*:$", default)), 1, default)
        self.assertIn("127.0.0.1:6379:1", default)


class KubernetesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            import yaml
        except ImportError:
            raise unittest.SkipTest("python3-yaml is missing (scripts/setup installs it)")
        cls.docs = {}
        for name in ("configmap.yaml", "deployment.yaml", "service.yaml"):
            with open(os.path.join(KUBERNETES, name)) as f:
                for doc in yaml.safe_load_all(f):
                    cls.docs[doc["kind"]] = doc

    def test_configmap_config_is_valid(self):
        text = self.docs["ConfigMap"]["data"]["ringproxy.yml"]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ringproxy.yml")
            with open(path, "w") as f:
                f.write(text)
            out = check_config(path)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_manifests_agree(self):
        cm, dep, svc = self.docs["ConfigMap"], self.docs["Deployment"], self.docs["Service"]
        pod = dep["spec"]["template"]
        container = pod["spec"]["containers"][0]
        args = container["args"]
        conf = args[args.index("-c") + 1]
        # The config's directory is the mount, whole: a subPath mount would never be updated.
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == os.path.dirname(conf))
        self.assertNotIn("subPath", mount)
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
        self.assertEqual(volume["configMap"]["name"], cm["metadata"]["name"])
        self.assertIn(os.path.basename(conf), cm["data"])
        # The pool listens on the container's port that the Service targets.
        listen = re.search(r"listen: ([\d.]+):(\d+)", cm["data"][os.path.basename(conf)])
        self.assertEqual(listen.group(1), "0.0.0.0")
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        target = svc["spec"]["ports"][0]["targetPort"]
        self.assertEqual(ports[target], int(listen.group(2)))
        admin = args[args.index("--admin") + 1]
        self.assertEqual(int(admin.rsplit(":", 1)[1]), ports["admin"])
        for k, v in svc["spec"]["selector"].items():
            self.assertEqual(pod["metadata"]["labels"][k], v)
        self.assertEqual(dep["spec"]["selector"]["matchLabels"], svc["spec"]["selector"])

    def test_configmap_update_reloads(self):
        """The kubelet's update: files in a new timestamped directory, a `..data_tmp` symlink
        to it renamed over `..data`; the config path is a symlink through `..data`."""
        listen = harness.free_port()
        dead = [harness.free_port() for _ in range(3)]  # backends need not run for a reload
        with tempfile.TemporaryDirectory() as d:
            def publish(stamp, text):
                os.mkdir(os.path.join(d, stamp))
                with open(os.path.join(d, stamp, "ringproxy.yml"), "w") as f:
                    f.write(text)
                os.symlink(stamp, os.path.join(d, "..data_tmp"))
                os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))

            publish("..2024_01_01", redis_config("main", listen, [("a", dead[0]), ("b", dead[1])]))
            os.symlink("..data/ringproxy.yml", os.path.join(d, "ringproxy.yml"))
            proxy = harness.start_ringproxy(os.path.join(d, "ringproxy.yml"), listen)
            try:
                publish("..2024_01_02", redis_config("main", listen, [("a", dead[0]), ("b", dead[1]),
                                                                      ("c", dead[2])]))
                shutil.rmtree(os.path.join(d, "..2024_01_01"))
                harness.wait_for(lambda: "reload generation 2: pool main: +1 -0" in proxy.output(), timeout=10,
                                 what="reload after the ..data swap: " + proxy.output())
                publish("..2024_01_03", "main:\n  listen: 127.0.0.1:notaport\n")
                harness.wait_for(lambda: "notaport" in proxy.output(), timeout=10,
                                 what="the bad update reported: " + proxy.output())
                self.assertNotIn("reload generation 3", proxy.output())
                conn = RawConn(listen)
                self.assertEqual(conn.call("PING"), b"PONG")
                conn.close()
                self.assertIsNone(proxy.popen.poll())
            finally:
                proxy.stop()


class LogrotateTest(unittest.TestCase):
    def test_unit_and_logrotate_agree_on_paths(self):
        args = exec_start_args(unit_template())
        log_path = args[args.index("-o") + 1]
        pid_path = args[args.index("-p") + 1]
        snippet = read(os.path.join(PACKAGING, "ringproxy.logrotate"))
        self.assertIn(os.path.dirname(log_path) + "/*.log {", snippet)
        self.assertIn(pid_path, snippet)
        directives = [l.split("#")[0].strip() for l in snippet.splitlines()]
        self.assertNotIn("copytruncate", directives)
        unit = unit_template()
        # systemd makes the directories the paths are in, writable by the service's user.
        self.assertIn("LogsDirectory=" + os.path.basename(os.path.dirname(log_path)), unit)
        self.assertTrue(log_path.startswith("/var/log/"))
        self.assertIn("RuntimeDirectory=" + os.path.basename(os.path.dirname(pid_path)), unit)
        self.assertTrue(pid_path.startswith("/run/"))
        self.assertRegex(unit, r"(?m)^ExecReload=/bin/kill -HUP \$MAINPID$")
        self.assertRegex(unit, r"(?m)^Restart=on-failure$")

    def test_rotation_reopens_the_log(self):
        snippet = read(os.path.join(PACKAGING, "ringproxy.logrotate"))
        listen = harness.free_port()
        with tempfile.TemporaryDirectory() as d:
            logdir, rundir = os.path.join(d, "log"), os.path.join(d, "run")
            os.mkdir(logdir)
            os.mkdir(rundir)
            log, pidfile = os.path.join(logdir, "ringproxy.log"), os.path.join(rundir, "ringproxy.pid")
            conf = harness.write_config(redis_config("main", listen, [("a", harness.free_port())]), d)
            proxy = harness.start_ringproxy(conf, listen, ["-o", log, "-p", pidfile])
            try:
                harness.wait_for(lambda: os.path.exists(pidfile) and "starting" in read(log), what="log and pid file")
                text = (snippet.replace("/var/log/ringproxy/", logdir + "/")
                        .replace("/run/ringproxy/ringproxy.pid", pidfile))
                self.assertNotEqual(text, snippet)
                # No ringproxy user here: this copy rotates as root.
                text = re.sub(r"(?m)^\s*su ringproxy ringproxy\s*$", "", text)
                logrotate = shutil.which("logrotate") or ("/usr/sbin/logrotate"
                                                          if os.path.exists("/usr/sbin/logrotate") else None)
                if logrotate:
                    cfg = os.path.join(d, "logrotate.conf")
                    with open(cfg, "w") as f:
                        f.write(text)
                    out = subprocess.run([logrotate, "-f", "-s", os.path.join(d, "state"), cfg],
                                         capture_output=True, text=True, timeout=30)
                    self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                else:  # what logrotate would do: rename, then the postrotate script
                    script = re.search(r"postrotate\n(.*?)\n\s*endscript", text, re.S).group(1)
                    os.rename(log, log + ".1")
                    subprocess.run(["sh", "-c", script], check=True, timeout=10)
                harness.wait_for(lambda: "reload" in read(log), timeout=10,
                                 what="lines in a new log file after rotation: " + proxy.output())
                rotated = read(log + ".1")
                self.assertIn("starting", rotated)
                self.assertIn("reopening the log file", rotated)
                self.assertNotIn("starting", read(log))
                self.assertIsNone(proxy.popen.poll())
            finally:
                proxy.stop()


class MaintainerScriptTest(unittest.TestCase):
    """The scripts run as dpkg runs them, with adduser, getent, install, systemctl and the
    deb-systemd-* helpers replaced by stubs that record their calls, in a mount namespace of
    their own whose /run and /var/log are empty tmpfs: nothing on this machine changes."""

    STUBS = ("adduser", "getent", "install", "systemctl", "deb-systemd-helper", "deb-systemd-invoke")

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0 or not shutil.which("unshare"):
            raise unittest.SkipTest("needs root and unshare for a private mount namespace")
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                "mount -t tmpfs tmpfs /run"], capture_output=True, text=True)
        if probe.returncode != 0:
            raise unittest.SkipTest("cannot mount in a private namespace here: " + probe.stderr.strip())

    def run_script(self, name, args, systemd, user_exists=False, start_fails=False, log_dir=False):
        with tempfile.TemporaryDirectory() as d:
            calls = os.path.join(d, "calls")
            stubs = os.path.join(d, "bin")
            os.mkdir(stubs)
            for stub in self.STUBS:
                with open(os.path.join(stubs, stub), "w") as f:
                    f.write(f'#!/bin/sh\necho "{stub} $*" >> "$CALLS"\n'
                            'case "$(basename "$0") $1" in\n'
                            '  "getent passwd") [ -n "$USER_EXISTS" ] && echo "ringproxy:x:999:999::/nonexistent:/usr/sbin/nologin" || exit 2 ;;\n'
                            '  "deb-systemd-invoke start"|"deb-systemd-invoke try-restart") [ -z "$START_FAILS" ] || exit 1 ;;\n'
                            'esac\nexit 0\n')
                os.chmod(os.path.join(stubs, stub), 0o755)
            setup = "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/log"
            if systemd:
                setup += " && mkdir -p /run/systemd/system"
            if log_dir:
                setup += " && mkdir /var/log/ringproxy && touch /var/log/ringproxy/ringproxy.log"
            # After the script: whether the log directory is still there (postrm purge).
            script = os.path.join(PACKAGING, "debian", name)
            cmd = (f'{setup} && sh {script} "$@"; rc=$?; '
                   f'[ -e /var/log/ringproxy ] && echo "log-dir-present" >> "$CALLS"; exit $rc')
            env = dict(os.environ, PATH=stubs + ":" + os.environ["PATH"], CALLS=calls,
                       USER_EXISTS="1" if user_exists else "", START_FAILS="1" if start_fails else "")
            out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd, "sh", *args],
                                 capture_output=True, text=True, env=env, timeout=30)
            return out, read(calls).splitlines()

    def test_the_real_adduser_on_a_copy_of_etc(self):
        """postinst with the real adduser, getent and install, on a copy of /etc bound over
        /etc in the namespace: the user the unit names exists after it, a second run (an
        upgrade) leaves it as it is, and the log directory belongs to it."""
        if not shutil.which("adduser"):
            self.skipTest("adduser is missing")
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["cp", "-a", "/etc", os.path.join(d, "etc")], check=True)
            stubs = os.path.join(d, "bin")
            os.mkdir(stubs)
            for stub in ("systemctl", "deb-systemd-helper", "deb-systemd-invoke"):
                with open(os.path.join(stubs, stub), "w") as f:
                    f.write("#!/bin/sh\nexit 0\n")
                os.chmod(os.path.join(stubs, stub), 0o755)
            postinst = os.path.join(PACKAGING, "debian", "postinst")
            cmd = (f"mount --bind {d}/etc /etc && mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/log && "
                   f"sh {postinst} configure && sh {postinst} configure 0.0.9 && "
                   "getent passwd ringproxy && getent group ringproxy && stat -c '%U:%G %a' /var/log/ringproxy")
            out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd],
                                 capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, PATH=stubs + ":" + os.environ["PATH"]))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        passwd, group, logdir = out.stdout.splitlines()
        name, _, uid, gid, _, home, shell = passwd.split(":")
        self.assertEqual((name, home, shell), ("ringproxy", "/nonexistent", "/usr/sbin/nologin"))
        self.assertLess(int(uid), 1000)  # a system user
        self.assertEqual(group.split(":")[2], gid)
        self.assertEqual(logdir, "ringproxy:ringproxy 750")
        unit = unit_template()
        self.assertRegex(unit, r"(?m)^User=ringproxy$")
        self.assertRegex(unit, r"(?m)^LogsDirectoryMode=0750$")

    def test_fresh_install_without_systemd(self):
        out, calls = self.run_script("postinst", ["configure"], systemd=False)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("getent passwd ringproxy", calls)
        adduser = next(c for c in calls if c.startswith("adduser "))
        self.assertIn("--system", adduser)
        self.assertTrue(adduser.endswith(" ringproxy"), adduser)
        self.assertIn("install -d -o ringproxy -g ringproxy -m 0750 /var/log/ringproxy", calls)
        self.assertIn("deb-systemd-helper enable ringproxy.service", calls)
        # No systemd: nothing started, nothing asked of systemctl.
        self.assertFalse([c for c in calls if c.startswith(("systemctl", "deb-systemd-invoke"))], calls)

    def test_fresh_install_with_systemd_starts_the_service(self):
        out, calls = self.run_script("postinst", ["configure"], systemd=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("systemctl --system daemon-reload", calls)
        self.assertIn("deb-systemd-invoke start ringproxy.service", calls)
        self.assertLess(calls.index("deb-systemd-helper enable ringproxy.service"),
                        calls.index("deb-systemd-invoke start ringproxy.service"))

    def test_upgrade_restarts_only_a_running_service_and_keeps_the_user(self):
        out, calls = self.run_script("postinst", ["configure", "0.0.9"], systemd=True, user_exists=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertFalse([c for c in calls if c.startswith("adduser")], calls)
        self.assertIn("deb-systemd-invoke try-restart ringproxy.service", calls)
        self.assertNotIn("deb-systemd-invoke start ringproxy.service", calls)

    def test_a_service_that_cannot_start_does_not_fail_the_install(self):
        out, calls = self.run_script("postinst", ["configure"], systemd=True, start_fails=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("journalctl -u ringproxy", out.stderr)

    def test_prerm_stops_on_remove_only(self):
        out, calls = self.run_script("prerm", ["remove"], systemd=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("deb-systemd-invoke stop ringproxy.service", calls)
        out, calls = self.run_script("prerm", ["upgrade", "0.2.0"], systemd=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(calls, [])
        out, calls = self.run_script("prerm", ["remove"], systemd=False)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(calls, [])

    def test_postrm_remove_keeps_logs_and_purge_deletes_them(self):
        out, calls = self.run_script("postrm", ["remove"], systemd=True, log_dir=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("deb-systemd-helper mask ringproxy.service", calls)
        self.assertIn("log-dir-present", calls)
        out, calls = self.run_script("postrm", ["purge"], systemd=False, log_dir=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("deb-systemd-helper purge ringproxy.service", calls)
        self.assertNotIn("log-dir-present", calls)
        self.assertFalse([c for c in calls if c.startswith("systemctl")], calls)


class SetupScriptTest(unittest.TestCase):
    """scripts/setup with dpkg-query, apt-get and service replaced by stubs that record their
    calls (dpkg-query reports the packages in $MISSING as not installed)."""

    def run_setup(self, missing):
        with tempfile.TemporaryDirectory() as d:
            calls = os.path.join(d, "calls")
            stubs = {
                "dpkg-query": 'for p; do :; done; case " $MISSING " in *" $p "*) exit 1 ;; esac\n'
                              'printf "install ok installed"\n',
                "apt-get": 'echo "apt-get $*" >> "$CALLS"\n',
                "service": 'echo "service $*" >> "$CALLS"\n',
            }
            for name, body in stubs.items():
                path = os.path.join(d, name)
                with open(path, "w") as f:
                    f.write("#!/bin/sh\n" + body)
                os.chmod(path, 0o755)
                self.assertEqual(shutil.which(name, path=d), path)
            env = dict(os.environ, PATH=d + ":" + os.environ["PATH"], CALLS=calls, MISSING=missing)
            out = subprocess.run([os.path.join(ROOT, "scripts", "setup")], env=env, capture_output=True,
                                 text=True, timeout=60)
            return out, read(calls).splitlines()

    def test_stops_only_services_it_installed(self):
        if os.geteuid() != 0:
            self.skipTest("scripts/setup would use sudo")
        out, calls = self.run_setup("redis-server nutcracker")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue([c for c in calls if c.startswith("apt-get ") and " install " in c], calls)
        stops = [c for c in calls if c.startswith("service ")]
        self.assertEqual(stops, ["service redis-server stop", "service nutcracker stop"])

    def test_nothing_missing_touches_nothing(self):
        out, calls = self.run_setup("")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(calls, [])


class RunScriptTest(unittest.TestCase):
    """scripts/run with RINGPROXY_BUILD set: the binaries the suite built, no setup, no build
    (so a mistake here can never rebuild the tree)."""

    def env(self, **ports):
        env = dict(os.environ, RINGPROXY_BUILD=harness.BUILD)
        env.update({k: str(v) for k, v in ports.items()})
        return env

    def free_ports(self):
        return dict(RINGPROXY_PORT=harness.free_port(), RINGPROXY_STATS_PORT=harness.free_port(),
                    RINGPROXY_BACKEND_PORTS=" ".join(str(harness.free_port()) for _ in range(3)))

    def start(self, env, out_dir):
        stdout, stderr = os.path.join(out_dir, "out"), os.path.join(out_dir, "err")
        with open(stdout, "w") as out, open(stderr, "w") as err:
            proc = subprocess.Popen([os.path.join(ROOT, "scripts", "run")], cwd=ROOT, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        return proc, stdout, stderr

    def assert_nothing_left(self, proc):
        try:
            harness.wait_for(lambda: not session_processes(proc.pid), timeout=10, what="no process left")
        finally:
            for pid in session_processes(proc.pid):
                os.kill(pid, signal.SIGKILL)

    def test_busy_port_is_named_with_its_variable(self):
        for variable in ("RINGPROXY_PORT", "RINGPROXY_STATS_PORT", "RINGPROXY_BACKEND_PORTS"):
            with self.subTest(variable=variable), socket.socket() as held, tempfile.TemporaryDirectory() as d:
                held.bind(("127.0.0.1", 0))
                held.listen(1)
                busy = held.getsockname()[1]
                ports = self.free_ports()
                if variable == "RINGPROXY_BACKEND_PORTS":
                    ports[variable] = f"{harness.free_port()} {busy} {harness.free_port()}"
                else:
                    ports[variable] = busy
                began = time.monotonic()
                proc, stdout, stderr = self.start(self.env(**ports), d)
                try:
                    rc = proc.wait(timeout=30)
                finally:
                    self.assert_nothing_left(proc)
                err = read(stderr)
                self.assertNotEqual(rc, 0)
                self.assertIn(f"port {busy} is in use", err)
                self.assertIn(variable, err)
                self.assertNotIn("stopped", err + read(stdout))
                self.assertLess(time.monotonic() - began, 10)

    def test_bad_port_values_are_refused(self):
        for variable, value in (("RINGPROXY_PORT", "http"), ("RINGPROXY_STATS_PORT", "70000"),
                                ("RINGPROXY_BACKEND_PORTS", "7301 7302"), ("RINGPROXY_BACKEND_PORTS", "7301 7302 *")):
            with self.subTest(variable=variable, value=value), tempfile.TemporaryDirectory() as d:
                ports = self.free_ports()
                ports[variable] = value
                proc, stdout, stderr = self.start(self.env(**ports), d)
                try:
                    rc = proc.wait(timeout=30)
                finally:
                    self.assert_nothing_left(proc)
                self.assertEqual(rc, 2, read(stderr))
                self.assertIn(variable, read(stderr))

    def test_a_proxy_that_fails_to_start(self):
        """ringproxy exits at once (here: a stand-in that does): the script says so, stops the
        backends it started and does not claim to have stopped the proxy."""
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, "proxy"))
            fake = os.path.join(d, "proxy", "ringproxy")
            with open(fake, "w") as f:
                f.write("#!/bin/sh\necho 'ringproxy: pool local: cannot listen (stand-in)' >&2\nexit 1\n")
            os.chmod(fake, 0o755)
            ports = self.free_ports()
            env = self.env(**ports)
            env["RINGPROXY_BUILD"] = d
            proc, stdout, stderr = self.start(env, d)
            try:
                rc = proc.wait(timeout=30)
            finally:
                self.assert_nothing_left(proc)
            err = read(stderr)
            self.assertEqual(rc, 1, err)
            self.assertIn("ringproxy did not start", err)
            stopped = re.search(r"scripts/run: stopped (.*)", err)
            self.assertTrue(stopped, err)
            self.assertEqual(sorted(stopped.group(1).split(", ")),
                             sorted(f"redis-server:{p}" for p in ports["RINGPROXY_BACKEND_PORTS"].split()))
            self.assertNotIn("ringproxy:", err.replace("ringproxy: pool", ""))

    def run_and_stop(self, stop):
        with tempfile.TemporaryDirectory() as d:
            ports = self.free_ports()
            proc, stdout, stderr = self.start(self.env(**ports), d)
            try:
                harness.wait_for(lambda: "ringproxy is running" in read(stdout) or proc.poll() is not None,
                                 timeout=20, what="scripts/run to start")
                self.assertIsNone(proc.poll(), read(stderr))
                out = read(stdout)
                port = ports["RINGPROXY_PORT"]
                self.assertIn(f"redis-cli -p {port} ", out)
                conn = RawConn(port)
                self.assertEqual(conn.call("SET", "greeting", "hello"), b"OK")
                self.assertEqual(conn.call("GET", "greeting"), b"hello")
                conn.close()
                with socket.create_connection(("127.0.0.1", ports["RINGPROXY_STATS_PORT"]), timeout=5) as s:
                    self.assertIn(b'"service"', s.recv(4096))
                conf = re.search(r"-c (\S+ringproxy\.yml)", out).group(1)
                owner = harness.run_ringctl("owner", "-c", conf, "greeting")
                self.assertEqual(owner.returncode, 0, owner.stderr)
                stop(proc)
                rc = proc.wait(timeout=20)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                self.assert_nothing_left(proc)
            self.assertFalse(os.path.exists(conf), "the run's temporary directory is removed")
            for port in [ports["RINGPROXY_PORT"], ports["RINGPROXY_STATS_PORT"],
                         *ports["RINGPROXY_BACKEND_PORTS"].split()]:
                with socket.socket() as s:
                    self.assertNotEqual(s.connect_ex(("127.0.0.1", int(port))), 0, f"port {port} still open")
            return rc, read(stderr), ports

    def test_sigterm_stops_what_it_started(self):
        rc, err, ports = self.run_and_stop(lambda proc: proc.send_signal(signal.SIGTERM))
        self.assertEqual(rc, 143, err)
        stopped = re.search(r"scripts/run: stopped (.*)", err)
        self.assertTrue(stopped, err)
        names = sorted(stopped.group(1).split(", "))
        expected = sorted([f"ringproxy:{ports['RINGPROXY_PORT']}"] +
                          [f"redis-server:{p}" for p in ports["RINGPROXY_BACKEND_PORTS"].split()])
        self.assertEqual(names, expected)
        self.assertNotIn("already ended", err)

    def test_ctrl_c_stops_everything(self):
        # A terminal's Ctrl-C: SIGINT to the whole foreground process group.
        rc, err, ports = self.run_and_stop(lambda proc: os.killpg(proc.pid, signal.SIGINT))
        # The script takes the SIGINT (130), unless ringproxy, which got it too, ended first and
        # the script then passes on its status (0).
        self.assertIn(rc, (0, 130), err)
        # Each process is either stopped by the script or had already ended by the same SIGINT.
        named = re.findall(r"scripts/run: (?:stopped|already ended:) (.*)", err)
        named += [f"ringproxy:{ports['RINGPROXY_PORT']}"] * len(re.findall(r"ringproxy exited with status 0", err))
        names = sorted(", ".join(named).split(", "))
        expected = sorted([f"ringproxy:{ports['RINGPROXY_PORT']}"] +
                          [f"redis-server:{p}" for p in ports["RINGPROXY_BACKEND_PORTS"].split()])
        self.assertEqual(names, expected, err)


def package_build_dir():
    """A build directory of its own for the package, kept between runs (keyed by the source
    tree) so that a rerun recompiles only what changed: a first Release build of the two
    programs takes minutes on two cores."""
    given = os.environ.get("RINGPROXY_PACKAGE_BUILD")
    if given:
        return given
    key = hashlib.sha1(ROOT.encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"ringproxy-package-build-{os.geteuid()}-{key}")


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(ringproxy VERSION ([\d.]+)", f.read()).group(1)


@unittest.skipUnless(shutil.which("cpack") and shutil.which("dpkg-deb"),
                     "cpack and dpkg-deb are needed to build and inspect the Debian package")
class DebianPackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.build = package_build_dir()
        cls.out = os.path.join(cls.build, "package-test-out")
        os.makedirs(cls.build, exist_ok=True)
        # Two runs of this test from one checkout at once take turns with the directory.
        cls.lock = open(os.path.join(cls.build, ".package-test.lock"), "w")
        fcntl.flock(cls.lock, fcntl.LOCK_EX)
        # A fresh configure every run: no cache kept (objects are reused where still valid).
        for stale in ("CMakeCache.txt", "CPackConfig.cmake"):
            if os.path.exists(os.path.join(cls.build, stale)):
                os.remove(os.path.join(cls.build, stale))
        shutil.rmtree(cls.out, ignore_errors=True)
        os.makedirs(cls.out)
        cls.timings = {}

        def step(name, argv, cwd=None, timeout=600):
            began = time.monotonic()
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
            cls.timings[name] = time.monotonic() - began
            if done.returncode != 0:
                raise AssertionError(f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            return done

        # The package's prerequisites are the two programs only: cpack builds nothing else.
        step("configure", ["cmake", "-S", ROOT, "-B", cls.build, "-DCMAKE_BUILD_TYPE=Release",
                           "-DCMAKE_INSTALL_PREFIX=/usr", "-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON"])
        step("build", ["cmake", "--build", cls.build, "-j", str(os.cpu_count() or 2),
                       "--target", "ringproxy", "ringctl"])
        cls.stage = os.path.join(cls.out, "stage")
        began = time.monotonic()
        done = subprocess.run(["cmake", "--install", cls.build], env=dict(os.environ, DESTDIR=cls.stage),
                              capture_output=True, text=True, timeout=120)
        cls.timings["install"] = time.monotonic() - began
        cls.install_result = done
        step("cpack", ["cpack", "-G", "DEB", "-B", cls.out], cwd=cls.build)
        debs = glob.glob(os.path.join(cls.out, "ringproxy_*.deb"))
        if len(debs) != 1:
            raise AssertionError(f"expected one .deb in {cls.out}, found {debs}")
        cls.deb = debs[0]
        cls.root = os.path.join(cls.out, "root")
        subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True)
        cls.control = os.path.join(cls.out, "control")
        subprocess.run(["dpkg-deb", "-e", cls.deb, cls.control], check=True)
        print("package build timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in cls.timings.items()),
              file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.lock.close()

    SHIPPED = ["usr/bin/ringproxy", "usr/bin/ringctl", "lib/systemd/system/ringproxy.service",
               "etc/ringproxy/ringproxy.yml", "etc/logrotate.d/ringproxy", "etc/default/ringproxy"]

    def test_cmake_install_puts_everything_in_place(self):
        self.assertEqual(self.install_result.returncode, 0, self.install_result.stderr)
        for path in self.SHIPPED:
            with self.subTest(path=path):
                self.assertTrue(os.path.isfile(os.path.join(self.stage, path)), path)
        self.assertTrue(os.access(os.path.join(self.stage, "usr/bin/ringproxy"), os.X_OK))
        with open(os.path.join(self.stage, "etc/ringproxy/ringproxy.yml")) as a, \
                open(os.path.join(ROOT, "config/examples/ringproxy.yml")) as b:
            self.assertEqual(a.read(), b.read())
        for example in EXAMPLES:
            if os.path.basename(example) == "local.yml":  # scripts/run's, not installed
                continue
            self.assertTrue(os.path.isfile(os.path.join(
                self.stage, "usr/share/doc/ringproxy/examples", os.path.basename(example))), example)

    def test_package_contents(self):
        listing = subprocess.run(["dpkg-deb", "--contents", self.deb], capture_output=True, text=True,
                                 check=True).stdout
        files = {line.split()[-1].lstrip(".").lstrip("/") for line in listing.splitlines() if line.strip()}
        for path in self.SHIPPED:
            self.assertIn(path, files)
        self.assertRegex(listing, r"-rwxr-xr-x root/root .* \./usr/bin/ringproxy")

    def test_package_fields_and_depends(self):
        info = subprocess.run(["dpkg-deb", "--info", self.deb], capture_output=True, text=True, check=True).stdout
        fields = dict(re.findall(r"(?m)^ ([A-Z][\w-]*): (.*)$", info))
        self.assertEqual(fields["Package"], "ringproxy")
        self.assertEqual(fields["Version"], project_version())
        depends = [d.strip().split()[0] for d in fields["Depends"].split(",")]
        # The runtime libraries the programs link, each by its package (names vary by release).
        for lib in ("libuv1", "libhiredis", "libyaml-cpp", "libxxhash", "libssl", "libstdc++6", "adduser"):
            self.assertTrue([d for d in depends if d.startswith(lib)], f"{lib} not in Depends: {fields['Depends']}")
        conffiles = read(os.path.join(self.control, "conffiles")).split()
        self.assertEqual(sorted(conffiles), ["/etc/default/ringproxy", "/etc/logrotate.d/ringproxy",
                                             "/etc/ringproxy/ringproxy.yml"])
        for script in ("postinst", "prerm", "postrm"):
            packaged = os.path.join(self.control, script)
            self.assertTrue(os.access(packaged, os.X_OK), script)
            self.assertEqual(read(packaged), read(os.path.join(PACKAGING, "debian", script)))

    def test_unpacked_programs_run(self):
        ringproxy = os.path.join(self.root, "usr/bin/ringproxy")
        ldd = subprocess.run(["ldd", ringproxy], capture_output=True, text=True)
        self.assertNotIn("not found", ldd.stdout)
        version = subprocess.run([ringproxy, "-V"], capture_output=True, text=True, timeout=10)
        self.assertEqual(version.returncode, 0, version.stderr)
        self.assertIn(f"ringproxy-{project_version()}", version.stdout + version.stderr)
        check = subprocess.run([ringproxy, "-t", "-c", os.path.join(self.root, "etc/ringproxy/ringproxy.yml")],
                               capture_output=True, text=True, timeout=10)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        for example in glob.glob(os.path.join(self.root, "usr/share/doc/ringproxy/examples/*.yml")):
            check = subprocess.run([ringproxy, "-t", "-c", example], capture_output=True, text=True, timeout=10)
            self.assertEqual(check.returncode, 0, example + ": " + check.stdout + check.stderr)
        ringctl = subprocess.run([os.path.join(self.root, "usr/bin/ringctl"), "--help"], capture_output=True,
                                 text=True, timeout=10)
        self.assertEqual(ringctl.returncode, 0, ringctl.stderr)
        self.assertIn("usage: ringctl", ringctl.stdout + ringctl.stderr)

    def test_packaged_config_serves(self):
        """The unpacked program on the packaged config, moved to free ports: a GET reaches a
        real redis-server."""
        redis = harness.start_redis()
        listen = harness.free_port()
        text = read(os.path.join(self.root, "etc/ringproxy/ringproxy.yml"))
        self.assertIn("127.0.0.1:22121", text)
        text = text.replace("127.0.0.1:22121", f"127.0.0.1:{listen}").replace(
            "127.0.0.1:6379:", f"127.0.0.1:{redis.port}:")
        conf = harness.write_config(text, self.out)
        proxy = harness.Proc([os.path.join(self.root, "usr/bin/ringproxy"), "-c", conf, "-s", "0"], listen,
                             "packaged-ringproxy").wait_port()
        try:
            conn = RawConn(listen)
            self.assertEqual(conn.call("SET", "k", "v"), b"OK")
            self.assertEqual(conn.call("GET", "k"), b"v")
            conn.close()
        finally:
            proxy.stop()
            redis.stop()

    def test_unit_names_the_packaged_files(self):
        unit = read(os.path.join(self.root, "lib/systemd/system/ringproxy.service"))
        args = exec_start_args(unit)
        self.assertEqual(args[0], "/usr/bin/ringproxy")
        self.assertEqual(args[args.index("-c") + 1], "/etc/ringproxy/ringproxy.yml")
        self.assertNotIn("-d", args)  # in the foreground
        self.assertIn("EnvironmentFile=-/etc/default/ringproxy", unit)
        self.assertIn("ExecReload=/usr/bin/ringproxy -t -c /etc/ringproxy/ringproxy.yml", unit)
        directives = "\n".join(l for l in unit.splitlines() if not l.startswith("#"))
        paths = re.findall(r"(?:^|[= ])(/(?:usr|etc)/\S+)", directives, re.M)
        self.assertGreaterEqual(len(paths), 4, paths)
        for path in paths:
            self.assertTrue(os.path.exists(os.path.join(self.root, path.lstrip("/"))), path)
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze is missing: the unit's syntax is not checked")
        # verify wants the programs at their paths: a copy names the unpacked ones.
        copy = os.path.join(self.out, "ringproxy.service")
        with open(copy, "w") as f:
            f.write(unit.replace("/usr/bin/", os.path.join(self.root, "usr/bin") + "/"))
        out = subprocess.run([analyze, "verify", copy], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertEqual((out.stdout + out.stderr).strip(), "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
