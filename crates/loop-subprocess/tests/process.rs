//! The high-level API: `create_subprocess_exec` / `create_subprocess_shell` and `Process`
//! (SUB-15 to SUB-21).

mod common;

use std::rc::Rc;

use common::*;
use loop_core::{Error, EventLoop};
use loop_subprocess::{Process, Stdio, SubprocessExt, SubprocessOptions};

fn piped() -> SubprocessOptions {
    SubprocessOptions::new()
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Pipe)
        .stderr(Stdio::Pipe)
}

fn exec(lp: &EventLoop, program: &str, args: &[&str], o: SubprocessOptions) -> Process {
    let lp2 = lp.clone();
    let program = program.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run(lp, LONG, async move {
        lp2.create_subprocess_exec(program, o.args(args)).await
    })
    .unwrap()
}

fn shell(lp: &EventLoop, cmd: &str, o: SubprocessOptions) -> Process {
    let lp2 = lp.clone();
    let cmd = cmd.to_string();
    run(lp, LONG, async move {
        lp2.create_subprocess_shell(cmd, o).await
    })
    .unwrap()
}

#[test]
fn sub_15_high_level_defaults_inherit_and_pipes_give_streams() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let p = exec(&lp, "true", &[], SubprocessOptions::new());
    assert!(p.stdin.is_none() && p.stdout.is_none() && p.stderr.is_none());
    for fd in 0..3 {
        assert!(p.transport().get_pipe_transport(fd).is_none());
    }
    assert!(p.pid() > 1);
    let p = Rc::new(p);
    let p2 = p.clone();
    assert_eq!(run(&lp, LONG, async move { p2.wait().await }).unwrap(), 0);

    let p = shell(&lp, "cat", piped().limit(1234));
    assert!(p.stdin.is_some());
    assert_eq!(p.stdout.as_ref().unwrap().limit(), 1234);
    assert_eq!(p.stderr.as_ref().unwrap().limit(), 1234);
    let mut p = p;
    let out = run(&lp, LONG, async move {
        let r = p.communicate(Some(b"echoed")).await;
        r.map(|(o, e)| (o, e, p.returncode()))
    })
    .unwrap();
    assert_eq!(out, (Some(b"echoed".to_vec()), Some(Vec::new()), Some(0)));
    lp.close().unwrap();
}

#[test]
fn sub_16_concurrent_waits_and_cancelling_one() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let p = Rc::new(exec(&lp, "sleep", &["60"], SubprocessOptions::new()));
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let p = p.clone();
            lp.create_task(async move { p.wait().await }).unwrap()
        })
        .collect();
    let cancelled = {
        let p = p.clone();
        lp.create_task(async move { p.wait().await }).unwrap()
    };
    spin(&lp, 2);
    assert!(cancelled.cancel());
    spin(&lp, 2);
    assert!(cancelled.done());
    assert_eq!(
        p.returncode(),
        None,
        "cancelling a wait() does not touch the child"
    );
    p.kill().unwrap();
    for t in tasks {
        assert_eq!(run(&lp, LONG, t).unwrap().unwrap(), -libc::SIGKILL);
    }
    assert_eq!(p.returncode(), Some(-libc::SIGKILL));
    assert!(lp.run_until_complete(cancelled).unwrap_err().is_cancelled());
    lp.close().unwrap();
}

#[test]
fn sub_17_wait_started_before_the_exit_waits_for_the_pipes_too() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // The shell exits with 3 at once; its background sleep keeps stdout open.
    let o = SubprocessOptions::new().stdout(Stdio::Pipe);
    let mut p = shell(&lp, "sleep 60 & echo $!; exit 3", o);
    let mut out = p.stdout.take().unwrap();
    let p = Rc::new(p);
    let early = {
        let p = p.clone();
        lp.create_task(async move { p.wait().await }).unwrap()
    };
    let (line, out) = run(&lp, LONG, async move {
        let r = out.readline().await;
        r.map(|l| (l, out))
    })
    .unwrap();
    let grandchild: i32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
    assert!(spin_until(&lp, || p.returncode().is_some()));
    assert_eq!(p.returncode(), Some(3));
    // Exit observed, stdout still open: the early wait() is still waiting...
    spin(&lp, 3);
    assert!(
        !early.done(),
        "wait() started before the exit returned before the pipes closed"
    );
    // ...while a wait() started now returns at once.
    let late = {
        let p = p.clone();
        lp.create_task(async move { p.wait().await }).unwrap()
    };
    spin(&lp, 2);
    assert!(late.done());
    assert!(!early.done());
    // Let the grandchild go: stdout closes, the early wait() completes.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(grandchild).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert_eq!(run(&lp, LONG, early).unwrap().unwrap(), 3);
    assert_eq!(run(&lp, LONG, late).unwrap().unwrap(), 3);
    drop(out);
    lp.close().unwrap();
}

#[test]
fn sub_18_communicate_variants() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // input, both outputs
    let mut p = shell(&lp, "cat; echo done >&2", piped());
    let r = run(&lp, LONG, async move {
        p.communicate(Some(b"some input")).await
    })
    .unwrap();
    assert_eq!(r, (Some(b"some input".to_vec()), Some(b"done\n".to_vec())));

    // no input: stdin is closed, the child sees EOF
    let mut p = exec(&lp, "cat", &[], piped());
    let r = run(&lp, LONG, async move { p.communicate(None).await }).unwrap();
    assert_eq!(r, (Some(Vec::new()), Some(Vec::new())));

    // empty input
    let mut p = shell(&lp, "wc -c", piped());
    let (out, _) = run(&lp, LONG, async move { p.communicate(Some(b"")).await }).unwrap();
    assert_eq!(String::from_utf8(out.unwrap()).unwrap().trim(), "0");

    // /dev/null in, out, err
    let o = SubprocessOptions::new()
        .stdin(Stdio::Null)
        .stdout(Stdio::Pipe)
        .stderr(Stdio::Null);
    let mut p = shell(&lp, "cat; echo gone >&2", o);
    assert!(p.stdin.is_none());
    let r = run(
        &lp,
        LONG,
        async move { p.communicate(Some(b"ignored")).await },
    )
    .unwrap();
    assert_eq!(r, (Some(Vec::new()), None));
    let o = SubprocessOptions::new()
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Null)
        .stderr(Stdio::Pipe);
    let mut p = shell(&lp, "cat; echo err >&2", o);
    let r = run(&lp, LONG, async move { p.communicate(Some(b"x")).await }).unwrap();
    assert_eq!(r, (None, Some(b"err\n".to_vec())));

    // stdin from a file descriptor
    let (r, w) = rustix::pipe::pipe().unwrap();
    rustix::io::write(&w, b"from an fd").unwrap();
    drop(w);
    let o = SubprocessOptions::new()
        .stdin(Stdio::Fd(r))
        .stdout(Stdio::Pipe);
    let mut p = exec(&lp, "cat", &[], o);
    let r = run(&lp, LONG, async move { p.communicate(None).await }).unwrap();
    assert_eq!(r, (Some(b"from an fd".to_vec()), None));
    lp.close().unwrap();
}

#[test]
fn sub_18_communicate_does_not_deadlock_on_full_pipes() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // 4 MiB through cat both ways, while stderr gets 1 MiB: far more than any pipe buffer.
    let input: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let mut p = shell(
        &lp,
        "head -c 1048576 /dev/zero >&2 & cat; wait",
        piped().limit(4096),
    );
    let inp = input.clone();
    let (out, err) = run(&lp, LONG, async move { p.communicate(Some(&inp)).await }).unwrap();
    assert_eq!(out.unwrap(), input);
    assert_eq!(err.unwrap().len(), 1 << 20);
    lp.close().unwrap();
}

#[test]
fn sub_19_broken_pipe_ignored_by_communicate_raised_by_drain() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let big = vec![b'x'; 1 << 20];
    // The child exits without reading.
    let mut p = exec(&lp, "true", &[], piped());
    let b = big.clone();
    let r = run(&lp, LONG, async move {
        let r = p.communicate(Some(&b)).await;
        r.map(|x| (x, p.returncode()))
    })
    .unwrap();
    assert_eq!(r, ((Some(Vec::new()), Some(Vec::new())), Some(0)));

    // A plain write + drain reports it.
    let p = exec(&lp, "true", &[], piped());
    let r = run(&lp, LONG, async move {
        p.wait().await?;
        let w = p.stdin.as_ref().unwrap();
        let mut last = Ok(());
        for _ in 0..4 {
            last = match w.write(&big) {
                Ok(()) => w.drain().await,
                Err(e) => Err(e),
            };
            if last.is_err() {
                break;
            }
        }
        last
    });
    let e = r.unwrap_err();
    let kind = std::io::Error::from(e.clone()).kind();
    assert!(
        matches!(
            kind,
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "{e:?}"
    );
    lp.close().unwrap();
}

#[test]
fn sub_20_kill_terminate_send_signal_give_negative_codes() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    for (sig, how) in [
        (libc::SIGKILL, "kill"),
        (libc::SIGTERM, "terminate"),
        (libc::SIGHUP, "send_signal"),
    ] {
        let p = exec(&lp, "sleep", &["60"], SubprocessOptions::new());
        match how {
            "kill" => p.kill().unwrap(),
            "terminate" => p.terminate().unwrap(),
            _ => p.send_signal(sig).unwrap(),
        }
        let code = run(&lp, LONG, async move { p.wait().await }).unwrap();
        assert_eq!(code, -sig, "{how}");
    }
    lp.close().unwrap();
}

#[test]
fn sub_21_stdout_paused_above_twice_the_limit_and_resumed() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let limit = 1000;
    let o = SubprocessOptions::new().stdout(Stdio::Pipe).limit(limit);
    let mut p = exec(&lp, "head", &["-c", "100000", "/dev/zero"], o);
    let pipe = p.transport().get_pipe_transport(1).unwrap();
    assert!(spin_until(&lp, || p
        .stdout
        .as_ref()
        .unwrap()
        .buffered_len()
        > 2 * limit));
    assert!(!pipe.is_reading(), "reading was not paused");
    let mut out = p.stdout.take().unwrap();
    // Consume until the buffer is at the limit or below, without running the loop (the data
    // is buffered, so each read completes at once): reading resumes.
    let mut first = Vec::new();
    while out.buffered_len() > limit {
        first.extend(futures_lite::future::block_on(out.read(limit)).unwrap());
    }
    assert!(!first.is_empty());
    // Resumed at once (more data may pause it again as soon as the loop reads it).
    assert!(pipe.is_reading(), "reading was not resumed");
    let rest = run(&lp, LONG, async move { out.read_all().await }).unwrap();
    assert_eq!(first.len() + rest.len(), 100000);
    lp.close().unwrap();
}

#[test]
fn sub_21_output_after_exit_can_be_read() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let o = SubprocessOptions::new().stdout(Stdio::Pipe);
    let mut p = shell(&lp, "echo line 1; echo line 2", o);
    let r = run(&lp, LONG, async move {
        let code = p.wait().await?;
        let all = p.stdout.as_mut().unwrap().read_all().await?;
        Ok::<_, Error>((code, all))
    })
    .unwrap();
    assert_eq!(r, (0, b"line 1\nline 2\n".to_vec()));
    lp.close().unwrap();
}

#[test]
fn sub_21_stdin_pipe_is_not_inherited() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let holder = exec(&lp, "cat", &[], SubprocessOptions::new().stdin(Stdio::Pipe));
    let fd = holder
        .transport()
        .get_pipe_transport(0)
        .unwrap()
        .fileno()
        .unwrap();
    assert!(fd > 2);
    let o = SubprocessOptions::new().stdout(Stdio::Pipe);
    let mut p = shell(
        &lp,
        &format!("if [ -e /proc/$$/fd/{fd} ]; then echo inherited; else echo not; fi"),
        o,
    );
    let (out, _) = run(&lp, LONG, async move { p.communicate(None).await }).unwrap();
    assert_eq!(out.unwrap(), b"not\n");
    // The loop's end really closes: cat gets EOF and exits.
    holder.stdin.as_ref().unwrap().close();
    let code = run(&lp, LONG, async move { holder.wait().await }).unwrap();
    assert_eq!(code, 0);
    lp.close().unwrap();
}

#[test]
fn sub_13_cancelled_create_subprocess_collects_the_child() {
    let _w = loop_testkit::exclusive();
    let lp = EventLoop::new().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let lp2 = lp.clone();
    let o = SubprocessOptions::new()
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Fd(w));
    let task = lp
        .create_task(async move {
            lp2.create_subprocess_shell("echo $$; exec sleep 60", o)
                .await
        })
        .unwrap();
    spin(&lp, 1); // the task spawned the child and waits for the stdin pipe
    use std::io::{BufRead, Read};
    let mut reader = std::io::BufReader::new(std::fs::File::from(r));
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let pid: u32 = line.trim().parse().unwrap();
    assert!(task.cancel());
    assert!(lp.run_until_complete(task).unwrap_err().is_cancelled());
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap(); // EOF: killed
    assert!(spin_until(&lp, || is_reaped(pid)));
    lp.close().unwrap();
}

#[test]
fn stdin_close_and_write_eof_give_the_child_eof() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    for use_eof in [false, true] {
        let mut p = exec(&lp, "cat", &[], piped());
        let r = run(&lp, LONG, async move {
            let w = p.stdin.as_ref().unwrap();
            w.write(b"abc")?;
            if use_eof {
                w.write_eof()?;
            } else {
                w.close();
            }
            let out = p.stdout.as_mut().unwrap().read_all().await?;
            let code = p.wait().await?;
            Ok::<_, Error>((out, code))
        })
        .unwrap();
        assert_eq!(r, (b"abc".to_vec(), 0));
    }
    lp.close().unwrap();
}
