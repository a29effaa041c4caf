//! `validator tools` reproduces the original's numbers (byteleap-protocol.md §9).

use std::process::Command;

fn tools(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_validator")).arg("tools").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

const SEED: &str = "000102030405060708090a0b0c0d0e0f";

#[test]
fn cpu_challenge_matches_the_vectors_of_9_2() {
    let doc = tools(&["cpu-challenge", "--seed", SEED, "--size", "4", "--rows", "0,3"]);
    assert_eq!(doc["merkle_root"], "c86551dd74fa438b2940983525bdba01edc7be277e00960c3a5c92f0465f84ff");
    assert_eq!(doc["row_hashes"]["0"], "20a3a0e2dc8b9f50");
    assert_eq!(doc["row_hashes"]["3"], "e142bdf734c84766");
    let doc = tools(&["cpu-challenge", "--seed", SEED, "--size", "4", "--iterations", "2"]);
    assert_eq!(doc["merkle_root"], "090fc29d63cf9f5bfb58b6d1cf60151661cc121dfc316126ab8fa4231d96b343");
}

#[test]
fn dynamic_size_matches_9_2() {
    assert_eq!(tools(&["dynamic-size", "--seed", SEED, "--base", "2000", "--variance", "0.1"])["size"], 2091);
    assert_eq!(
        tools(&["dynamic-size", "--seed", SEED, "--base", "32768", "--variance", "0.05", "--gpu"])["size"],
        32956
    );
}

#[test]
fn gpu_challenge_matches_the_vectors_of_9_3() {
    let doc = tools(&[
        "gpu-challenge",
        "--seed",
        SEED,
        "--uuid",
        "GPU-12345678-1234-1234-1234-123456789abc",
        "--size",
        "8",
        "--rows",
        "1,6",
        "--coords",
        "0:0,3:5",
    ]);
    assert_eq!(doc["merkle_root"], "1429a5da116f15834817fa84b74d67bb6097ec71c7a7796e396db2006ca06b85");
    assert_eq!(doc["row_hashes"]["1"], "2ec27d7fb811ccb0");
    assert_eq!(doc["row_hashes"]["6"], "263fb6530112fef3");
    assert_eq!(doc["values"][0]["value"], -0.5368416029959917);
    assert_eq!(doc["values"][1]["value"], -0.12812921591103077);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_validator"))
        .args(["tools", "cpu-challenge", "--seed", "xyz", "--size", "4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains("32 hex"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
}
