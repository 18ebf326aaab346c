//! End-to-end: the `fanzha validate` contract on the real binary.

use serde_json::Value;
use std::process::Command;

fn validate(args: &[&str]) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_fanzha"))
        .arg("validate")
        .args(args)
        .output()
        .expect("runs");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    (out.status.code().unwrap(), lines)
}

#[test]
fn numbers_in_every_form() {
    let (code, v) = validate(&[
        "number",
        "+86 138 0013 8000",
        "0086 10 1234 5678",
        "12593 13800138000",
    ]);
    assert_eq!(code, 0);
    assert_eq!(v[0]["e164"], "+8613800138000");
    assert_eq!(v[0]["kind"], "mobile");
    assert_eq!(v[0]["carrier"], "中国移动");
    assert_eq!(v[0]["home"], "北京市");
    assert_eq!(v[1]["e164"], "+861012345678");
    assert_eq!(v[1]["area_code"], "010");
    assert_eq!(v[2]["e164"], "+8613800138000");
}

#[test]
fn invalid_values_give_specific_reasons_and_exit_1() {
    let (code, v) = validate(&["number", "0371 123456", "hello"]);
    assert_eq!(code, 1);
    assert_eq!(v[0]["valid"], false);
    assert_eq!(v[0]["reason"], "too short for area code 0371");
    assert!(v[1]["reason"]
        .as_str()
        .unwrap()
        .contains("unexpected character"));

    let (code, v) = validate(&[
        "id",
        "110102199113010078",
        "990426199112010074",
        "36042619910102009X",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v[0]["reason"], "month 13");
    assert_eq!(v[1]["reason"], "unknown region code 990426");
    assert_eq!(v[2]["reason"], "check character should be 3");
}

#[test]
fn id_numbers_are_masked_unless_revealed() {
    let (code, v) = validate(&["id", "110102199101010078"]);
    assert_eq!(code, 0);
    assert_eq!(v[0]["normalized"], "110102********0078");
    assert!(!v[0].to_string().contains("110102199101010078"));
    let (_, v) = validate(&["id", "--reveal", "110102199101010078"]);
    assert_eq!(v[0]["normalized"], "110102199101010078");
}

#[test]
fn uscc_imei_imsi() {
    let (code, v) = validate(&["uscc", "91110000600037341L"]);
    assert_eq!((code, &v[0]["valid"]), (0, &Value::Bool(true)));
    let (code, v) = validate(&["imei", "35-417803-685978-1"]);
    assert_eq!(code, 1);
    assert!(v[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("check digit should be"));
    let (code, _) = validate(&["imsi", "460001234567890"]);
    assert_eq!(code, 0);
}

#[test]
fn usage_errors_exit_2_and_garbage_never_panics() {
    let out = Command::new(env!("CARGO_BIN_EXE_fanzha"))
        .args(["validate", "nonsense", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let garbage = [
        "",
        "+",
        "++86",
        "\u{1}\u{7f}",
        "-x-",
        "００８６１３８００１３８０００",
        "9999999999999999999999999999999999",
    ];
    for what in ["number", "id", "uscc", "imei", "imsi"] {
        let mut args = vec![what];
        args.extend(garbage.iter());
        let (code, v) = validate(&args);
        assert!(code == 0 || code == 1, "{what}");
        assert_eq!(v.len(), garbage.len());
    }
}
