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
