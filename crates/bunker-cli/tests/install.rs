//! What an administrator installs besides the binary: the version line,
//! shell completions and man pages, all generated from the command
//! definitions. Every command and every flag that `--help` shows must
//! appear in each of them.

mod common;

use std::collections::BTreeMap;

use common::*;

/// Every command path (`[]`, `["backup"]`, `["db", "backup"]`, …) and the
/// long flags its `--help` lists.
fn commands_and_flags(env: &TestEnv) -> BTreeMap<Vec<String>, Vec<String>> {
    let mut found = BTreeMap::new();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let out = run(bunker(env).args(&path).arg("--help"));
        expect_code(&out, 0, &format!("{path:?} --help"));
        let help = stdout(&out);
        let mut section = "";
        let mut flags = Vec::new();
        for line in help.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                section = line.trim_end_matches(':');
                continue;
            }
            let trimmed = line.trim_start();
            match section {
                "Commands" if line.starts_with("  ") && !line.starts_with("   ") => {
                    let name = trimmed.split_whitespace().next().unwrap_or("");
                    if !name.is_empty() && name != "help" {
                        let mut sub = path.clone();
                        sub.push(name.to_string());
                        todo.push(sub);
                    }
                }
                // An option's line starts with its spelling, then two
                // spaces and its description.
                "Options" if trimmed.starts_with('-') => {
                    let spec = trimmed.split("  ").next().unwrap_or("");
                    for word in spec.split([' ', ',', '=', '<', '[']) {
                        if let Some(flag) = word.strip_prefix("--") {
                            if !flag.is_empty() && flag != "help" && flag != "version" {
                                flags.push(flag.to_string());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        flags.sort();
        flags.dedup();
        found.insert(path, flags);
    }
    found
}

#[test]
fn version_says_commit_date_formats_and_backends() {
    let env = TestEnv::new();
    let out = run(bunker(&env).arg("--version"));
    expect_code(&out, 0, "--version");
    let text = stdout(&out);
    assert!(text.starts_with("bunker "), "{text}");
    for needle in [
        "commit ",
        "built 20",
        "reads versions 1 to 4, writes 4",
        "s3, azblob, gcs, sftp",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    let out = run(bunker(&env).args(["version", "--json"]));
    expect_code(&out, 0, "version --json");
    let v = parse_json(&out.stdout);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["repository_format"]["writes"], 4);
    assert_eq!(
        v["repository_format"]["reads"],
        serde_json::json!([1, 2, 3, 4])
    );
    assert_eq!(v["backends"].as_array().unwrap().len(), 5);
    let commit = v["commit"].as_str().unwrap();
    assert!(commit.len() >= 7 && text.contains(commit), "{v}");
}

#[test]
fn completions_and_man_pages_cover_every_command_and_flag() {
    let env = TestEnv::new();
    let tree = commands_and_flags(&env);
    assert!(tree.len() > 25, "{} commands found", tree.len());
    assert!(tree.contains_key(&vec!["db".to_string(), "restore".to_string()]));

    let script = |shell: &str| {
        let out = run(bunker(&env).args(["completions", shell]));
        expect_code(&out, 0, &format!("completions {shell}"));
        stdout(&out)
    };
    let (bash, zsh, fish) = (script("bash"), script("zsh"), script("fish"));
    let dir = env.path("man");
    let out = run(bunker(&env).args(["man", "-q", "--dir"]).arg(&dir));
    expect_code(&out, 0, "man --dir");
    for (path, flags) in &tree {
        let page_name = std::iter::once("bunker".to_string())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let page = std::fs::read_to_string(dir.join(format!("{page_name}.1")))
            .unwrap_or_else(|e| panic!("no man page for {path:?}: {e}"))
            .replace("\\-", "-");
        if let Some(name) = path.last() {
            for (shell, text) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
                assert!(
                    text.contains(name.as_str()),
                    "{shell} completions lack {path:?}"
                );
            }
        }
        for flag in flags {
            assert!(
                page.contains(&format!("--{flag}")),
                "{page_name}.1 lacks --{flag}"
            );
            assert!(
                bash.contains(&format!("--{flag}")),
                "bash completions lack --{flag}"
            );
            assert!(
                zsh.contains(&format!("--{flag}")),
                "zsh completions lack --{flag}"
            );
            assert!(
                fish.contains(&format!("-l {flag}")),
                "fish completions lack --{flag}"
            );
        }
    }
    // The pages open with man(1).
    let out = std::process::Command::new("man")
        .arg("-l")
        .arg(dir.join("bunker-backup.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("NAME") && shown.contains("--copy-to"),
        "{shown}"
    );
}
