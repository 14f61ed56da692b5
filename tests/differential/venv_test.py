#!/usr/bin/python3
"""An activated virtual environment: `VIRTUAL_ENV=V shmrepl run PROG` against `V/bin/python3 -u PROG`.

usage: venv_test.py --cli PATH --engine PATH [--python /usr/bin/python3] [-v]

Venvs made with `PYTHON -m venv --without-pip` in a temporary folder, a module placed in
their site-packages: one without the system's site-packages, one with them, each also
through a fresh worker (PYTHONHASHSEED set). stdout, stderr and the exit status must be
equal. A venv of another Python (pyvenv.cfg's home elsewhere) is refused: one line on
stderr, exit code 2, no traceback. The last line is `N passed, M failed`.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as diff  # noqa: E402  (base_env, start_engine)

PROGRAM = """import os, site, subprocess, sys
import venvmod
print(venvmod.WHO, venvmod.__file__)
print(sys.prefix, sys.exec_prefix, sys.base_prefix, sys.executable, sys._base_executable)
print(sys.path[1:])
print(site.ENABLE_USER_SITE, site.PREFIXES)
print(subprocess.run([sys.executable, "-c", "import sys; print(sys.prefix)"],
                     stdout=subprocess.PIPE, text=True).stdout, end="")
"""


def main():
    args = diff.driver_args(__doc__.splitlines()[0])
    with diff.private_engine(args, "shmrepl-venv-") as (env, work):
        root = os.path.dirname(work)  # the venvs go beside the work folder
        with open(os.path.join(work, "prog.py"), "w") as f:
            f.write(PROGRAM)
        passed = failed = 0

        def check(name, ok, detail=""):
            nonlocal passed, failed
            if ok:
                passed += 1
                if args.verbose:
                    print(f"ok   {name}")
            else:
                failed += 1
                print(f"FAIL {name}{detail}")

        for system in (False, True):
            venv = os.path.join(root, "venv-system" if system else "venv")
            cmd = [args.python, "-m", "venv", "--without-pip"] + (["--system-site-packages"] if system else [])
            subprocess.run(cmd + [venv], check=True)
            site_dir = os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
            with open(os.path.join(site_dir, "venvmod.py"), "w") as f:
                f.write(f'WHO = "the module of {os.path.basename(venv)}"\n')
            # As `source V/bin/activate`: VIRTUAL_ENV, and V/bin first on PATH.
            venv_env = dict(env, VIRTUAL_ENV=venv, PATH=os.path.join(venv, "bin") + ":" + env["PATH"])
            run = lambda cmd, e: subprocess.run(cmd, cwd=work, env=e, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            ref = run([os.path.join(venv, "bin", "python3"), "-u", "prog.py"], venv_env)
            ok_ref = ref.returncode == 0 and venv.encode() in ref.stdout
            for fresh in (False, True):
                e = dict(venv_env, PYTHONHASHSEED="11") if fresh else venv_env
                if fresh:
                    ref = run([os.path.join(venv, "bin", "python3"), "-u", "prog.py"], e)
                got = run([args.cli, "run", "prog.py"], e)
                same = (ref.stdout, ref.stderr, ref.returncode) == (got.stdout, got.stderr, got.returncode)
                check(f"{os.path.basename(venv)}{' (fresh worker)' if fresh else ''}", ok_ref and same,
                      f":\n  python3: {(ref.stdout, ref.stderr, ref.returncode)!r}\n"
                      f"  shmrepl: {(got.stdout, got.stderr, got.returncode)!r}")
        # A venv of another Python: refused in one line, exit code 2.
        bad = os.path.join(root, "other-venv")
        os.makedirs(os.path.join(bad, "bin"))
        with open(os.path.join(bad, "pyvenv.cfg"), "w") as f:
            f.write("home = /opt/other-python/bin\ninclude-system-site-packages = false\nversion = 3.99.0\n")
        for fresh in (False, True):
            e = dict(env, VIRTUAL_ENV=bad, **({"PYTHONHASHSEED": "11"} if fresh else {}))
            got = subprocess.run([args.cli, "run", "prog.py"], cwd=work, env=e, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            lines = got.stderr.decode().splitlines()
            ok = (got.returncode == 2 and got.stdout == b"" and len(lines) == 1
                  and lines[0].startswith("shmrepl: ") and bad in lines[0] and "/opt/other-python/bin" in lines[0]
                  and "Traceback" not in lines[0])
            check(f"venv of another Python refused{' (fresh worker)' if fresh else ''}", ok,
                  f": {(got.stdout, got.stderr, got.returncode)!r}")
        # The engine still serves sessions after refusing.
        got = subprocess.run([args.cli, "run", "-c", "print('still here')"], cwd=work, env=env,
                             stdout=subprocess.PIPE, timeout=120)
        check("a session after the refusal", got.stdout == b"still here\n" and got.returncode == 0)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
