//! What `bundle` generates from its own definitions: shell completion scripts, man
//! pages and the JSON Schemas, each checked by the tool that reads it (bash, `man`, a
//! JSON Schema validator) against the files users write.

mod common;

use std::path::Path;
use std::process::Command;

use common::Session;
use serde_json::Value;

const SUBCOMMANDS: &[&str] = &["build", "verify", "push", "install", "schema", "completion"];

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn stdout_of(s: &Session, args: &[&str]) -> String {
    let run = s.run(args);
    assert_eq!(run.code, 0, "{}", run.transcript());
    run.stdout
}

#[test]
fn bash_completion_loads_and_registers_a_function_for_bundle() {
    let bin = Path::new(env!("CARGO_BIN_EXE_bundle"));
    let out = Command::new("bash")
        .args([
            "-c",
            "source <(bundle completion bash) && complete -p bundle",
        ])
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("-F _bundle") && text.ends_with("bundle\n"),
        "{text}"
    );
}

#[test]
fn zsh_and_fish_completions_name_the_subcommands() {
    let s = Session::new();
    let zsh = stdout_of(&s, &["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef bundle"), "{zsh}");
    let fish = stdout_of(&s, &["completion", "fish"]);
    assert!(fish.contains("complete -c bundle"), "{fish}");
    for sub in SUBCOMMANDS {
        assert!(zsh.contains(&format!("'{sub}:")), "zsh lacks {sub}");
        assert!(fish.contains(&format!("-a \"{sub}\"")), "fish lacks {sub}");
    }
    // Where the shells are installed, they parse what they get.
    for (shell, script) in [("zsh", &zsh), ("fish", &fish)] {
        if has(shell) {
            let path = s.write(&format!("completion.{shell}"), script);
            let flag = if shell == "zsh" { "-n" } else { "--no-execute" };
            let (code, out) = common::tool(shell, &[flag, path.to_str().unwrap()], &s.work());
            assert_eq!(code, 0, "{shell}: {out}");
        }
    }
}

#[test]
fn man_pages_cover_bundle_and_each_subcommand_and_render() {
    let s = Session::new();
    let run = s.run(&["man", "man"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let dir = s.path("man");
    for (page, title) in [
        ("bundle.1", ".TH bundle 1"),
        ("bundle-install.1", ".TH bundle-install 1"),
        ("bundle-nodes-add.1", ".TH bundle-nodes-add 1"),
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.contains(title) && text.contains(".SH SYNOPSIS"),
            "{page}:\n{text}"
        );
    }
    let top = std::fs::read_to_string(dir.join("bundle.1")).unwrap();
    for sub in SUBCOMMANDS {
        assert!(
            top.contains(&format!("bundle\\-{sub}(1)")),
            "bundle.1 lacks {sub}"
        );
    }
    if has("man") {
        for page in ["bundle.1", "bundle-install.1"] {
            let out = Command::new("man")
                .args(["-l", dir.join(page).to_str().unwrap()])
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80")
                .output()
                .expect("man");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("SYNOPSIS") && text.contains("DESCRIPTION"),
                "{page}:\n{text}"
            );
        }
    }
}

/// The printed schema, compiled by a JSON Schema validator.
fn schema(s: &Session, which: &str) -> (Value, jsonschema::Validator) {
    let text = stdout_of(s, &["schema", which]);
    let value: Value = serde_json::from_str(&text).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&value).expect("a valid JSON Schema");
    (value, validator)
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("YAML")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn manifest_schema_accepts_the_shipped_manifests_and_rejects_an_unknown_field() {
    let s = Session::new();
    let (_, v) = schema(&s, "manifest");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for name in [
        "kubernetes-v1.29.2-calico.yaml",
        "kubernetes-v1.29.2-flannel.yaml",
        "kubernetes-v1.29.2-calico-el8.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        bundle_builder::manifest::parse(&text, name).expect("the loader accepts it");
        let doc = yaml(&text);
        assert_eq!(errors(&v, &doc), Vec::<String>::new(), "{name}");
        // A negative control: the validator does check, and agrees with the loader.
        let mut bad = doc.clone();
        bad["spec"]["imagez"] = Value::from(1);
        assert!(!errors(&v, &bad).is_empty(), "{name} with spec.imagez");
        let bad_text = text.replacen("spec:\n", "spec:\n  imagez: 1\n", 1);
        assert!(bundle_builder::manifest::parse(&bad_text, name).is_err());
    }
}

#[test]
fn init_writes_the_schema_its_template_names_and_both_pass_the_validator() {
    let s = Session::new();
    std::fs::create_dir(s.path("site")).unwrap();
    let run = s.run(&["init", "--output", "site/cluster.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let template = std::fs::read_to_string(s.path("site/cluster.yaml")).unwrap();
    // The editor's line names a file that exists beside the inventory...
    let named = template
        .lines()
        .find_map(|l| l.strip_prefix("# yaml-language-server: $schema="))
        .expect("a yaml-language-server line");
    let written = std::fs::read_to_string(s.path("site").join(named))
        .unwrap_or_else(|e| panic!("{named}: {e}"));
    // ...and it is the schema `bundle schema inventory` prints, which the template
    // and the loader both agree with.
    let (value, v) = schema(&s, "inventory");
    assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), value);
    bundle_installer::inventory::Inventory::parse(&template).expect("the loader accepts it");
    let doc = yaml(&template);
    assert_eq!(errors(&v, &doc), Vec::<String>::new());
    let mut bad = doc.clone();
    bad["spec"]["hosts"][0]["gpu"] = Value::from(true);
    assert!(!errors(&v, &bad).is_empty(), "spec.hosts[0].gpu");

    // A second inventory in the same folder refreshes the schema beside it.
    std::fs::write(s.path("site/cluster.schema.json"), "{}").unwrap();
    let run = s.run(&["init", "--output", "site/other.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let again = std::fs::read_to_string(s.path("site/cluster.schema.json")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), value);
}
