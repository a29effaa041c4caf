//! `validator devnet`: the newcomer's first command forms a cluster, shows it, and stops cleanly.

use std::process::Command;

#[test]
fn the_devnet_forms_a_cluster_shows_its_status_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_validator"))
            .args(["devnet", "--nodes", "3", "--duration", "4", "--base-port", "0", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "devnet failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("leads"), "{stdout}");
    for column in ["role", "term", "committed", "applied"] {
        assert!(stdout.contains(column), "the status table lacks {column}:\n{stdout}");
    }
    assert!(stdout.contains("leader") && stdout.contains("follower"), "{stdout}");
    assert!(stdout.contains("stopped"), "{stdout}");
    // Every node process is gone.
    let ps = Command::new("pgrep").args(["-f", &data.display().to_string()]).output().unwrap();
    assert!(String::from_utf8_lossy(&ps.stdout).trim().is_empty(), "node processes left behind");

    // A second run restarts the same cluster instead of creating a new one.
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
