//! `plimsoll check PATH...`: validate policy files (directories: their *.yaml, *.yml and *.json files),
//! service policies and node policies (a top-level `pool`) alike.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::nodes::parse_node_policy;
use crate::policy::{is_node_policy, parse_policy_file};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files, or directories whose policy files are checked (not recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Exit 0 when every file is a valid policy, 1 otherwise; every problem goes to stderr as `file:line:col: message`.
pub fn run(args: CheckArgs) -> ExitCode {
    let mut all_valid = true;
    for path in &args.paths {
        let files = match policy_files(path) {
            Ok(files) => files,
            Err(e) => {
                eprintln!("{}: {e:#}", path.display());
                all_valid = false;
                continue;
            }
        };
        for file in files {
            let name = file.display().to_string();
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let checked = if is_node_policy(&text) {
                        parse_node_policy(&name, &text).map(|p| format!("node pool {}", p.pool))
                    } else {
                        parse_policy_file(&name, &text).map(|f| f.to_string())
                    };
                    match checked {
                        Ok(what) => println!("{name}: ok ({what})"),
                        Err(e) => {
                            eprintln!("{e}");
                            all_valid = false;
                        }
                    }
                }
                Err(e) => {
                    eprintln!("{name}: cannot read: {e}");
                    all_valid = false;
                }
            }
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn policy_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let files = crate::policy::policy_files(path).context("cannot list directory")?;
    if files.is_empty() {
        anyhow::bail!("no policy files (*.yaml, *.yml, *.json) in directory");
    }
    Ok(files)
}
