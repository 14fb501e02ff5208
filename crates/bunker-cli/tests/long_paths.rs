//! Trees deeper than PATH_MAX (4096 bytes) back up and restore.

mod common;

use common::*;

/// Runs a Python snippet in `dir`: `os.chdir` one level at a time is how a
/// tree this deep is reached without a long path (dash's `cd` cannot).
fn py(dir: &std::path::Path, script: &str) -> std::process::Output {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn paths_longer_than_path_max_round_trip() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    let name = "d".repeat(200);
    let down = format!("import os\nfor _ in range(26): os.chdir('{name}')\n");
    py(&src, &format!("import os\nfor _ in range(26):\n    os.mkdir('{name}'); os.chdir('{name}')\nopen('leaf.txt', 'w').write('deep down')\nos.symlink('leaf.txt', 'link')\n"));

    let summary = env.backup(&[src.to_str().unwrap()]);
    assert_eq!(summary["files_new"], 1, "{summary}");
    assert!(
        summary["skipped"].as_array().unwrap().is_empty(),
        "{summary}"
    );

    let out = run(env.cmd().args(["ls", "latest", "--json"]));
    let listing = parse_json(&out.stdout);
    let longest = listing["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap().len())
        .max()
        .unwrap();
    assert!(longest > 5200, "deepest path is only {longest} bytes");

    let target = env.path("out");
    let spec = format!("latest:{}", src.display());
    env.restore_verified(&spec, &target);
    let read = py(
        &target,
        &format!("{down}print(open('leaf.txt').read(), os.readlink('link'), end='')"),
    );
    assert_eq!(String::from_utf8_lossy(&read.stdout), "deep down leaf.txt");

    // In place again: everything is already there and identical.
    let out = run(env.cmd().args([
        "restore",
        &spec,
        "--json",
        "--target",
        target.to_str().unwrap(),
    ]));
    expect_code(&out, 0, "second restore");
    assert_eq!(
        parse_json_stream(&out.stdout).pop().unwrap()["unchanged"],
        1
    );
}

/// Runs `bunker ARGS` with a larger-than-default stack budget check: the
/// process must not abort (a stack overflow is exit 134).
fn no_abort(out: &std::process::Output, what: &str) {
    assert_ne!(out.status.code(), None, "{what}: killed by a signal");
    assert_ne!(out.status.code(), Some(134), "{what}: aborted");
}

#[test]
fn a_tree_ten_thousand_levels_deep_backs_up_checks_restores_and_diffs() {
    const DEPTH: usize = 10_000;
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    let build = format!(
        "import os\nfor i in range({DEPTH}):\n    os.mkdir('d'); os.chdir('d')\n    if i % 2500 == 0: open('f', 'w').write(str(i))\nopen('leaf', 'w').write('bottom')\n"
    );
    py(&src, &build);
    let summary = env.backup(&[src.to_str().unwrap()]);
    assert_eq!(
        summary["dirs"].as_u64().unwrap() as usize,
        DEPTH + src.components().count() - 1,
        "{summary}"
    );
    assert!(
        summary["skipped"].as_array().unwrap().is_empty(),
        "{summary}"
    );

    // A second snapshot with the leaf changed: diff finds exactly that.
    let down = format!("import os\nfor _ in range({DEPTH}): os.chdir('d')\n");
    py(&src, &format!("{down}open('leaf', 'w').write('changed')\n"));
    env.backup(&[src.to_str().unwrap()]);
    let snaps = env.snapshots(&[]);
    let (first, second) = (
        snaps[0]["id"].as_str().unwrap(),
        snaps[1]["id"].as_str().unwrap(),
    );
    let out = run(env.cmd().args(["diff", "--json", first, second]));
    no_abort(&out, "diff");
    expect_code(&out, 0, "diff");
    let diff = parse_json(&out.stdout);
    assert_eq!(diff["modified"], 1, "{diff}");

    for args in [&["check", "--read-data"][..], &["ls", "latest"][..]] {
        let out = run(env.cmd().args(args));
        no_abort(&out, &format!("{args:?}"));
        expect_code(&out, 0, &format!("{args:?}"));
    }
    let target = env.path("out");
    let out = run(env.cmd().args([
        "restore",
        &format!("latest:{}", src.display()),
        "--verify",
        "--target",
        target.to_str().unwrap(),
    ]));
    no_abort(&out, "restore");
    expect_code(&out, 0, "restore");
    let read = py(
        &target,
        &format!("{down}print(open('leaf').read(), end='')"),
    );
    assert_eq!(String::from_utf8_lossy(&read.stdout), "changed");
    // And prune walks it too.
    let out = run(env.cmd().args(["forget", first, "--prune"]));
    no_abort(&out, "forget --prune");
    expect_code(&out, 0, "forget --prune");
}
