//! A renderer that misbehaves on request, for the sandbox tests and the call-overhead
//! benchmark. `with = { action = "..." }` picks the behaviour:
//! `noop`, `echo`, `loop`, `hog`, `snoop`, `flood`, `trap`, `chatter`, `leak` (writes its
//! `token` to its log, stdout and an error diagnostic), `quote` (does the same with every
//! string value of the objects it is given, as a careless plugin might).

use moor_plugin_sdk::{Diagnostic, Info, Input, Object, Outcome, Renderer, export_renderer};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub struct Config {
    pub action: String,
    #[serde(default)]
    pub token: String,
}

pub struct Probe;

impl Renderer for Probe {
    type Config = Config;

    fn info() -> Info {
        Info::new("probe", env!("CARGO_PKG_VERSION")).schema(json!({
            "type": "object",
            "required": ["action"],
            "properties": {
                "action": {"enum": ["noop", "echo", "loop", "hog", "snoop", "flood", "trap", "chatter", "leak", "quote"]},
                "token": {"type": "string"}
            }
        }))
    }

    fn render(config: Config, input: Input) -> Outcome<Vec<Object>> {
        match config.action.as_str() {
            "noop" => Ok(Vec::new()),
            "echo" => input.objects(),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "snoop" => Ok(vec![snoop(&input)]),
            "flood" => {
                let blob = "x".repeat(1 << 20);
                Ok((0..100)
                    .map(|i| Object::new(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("f{i}")}, "data": {"x": blob}}), "", 0))
                    .collect())
            }
            "trap" => panic!("probe was asked to trap"),
            "chatter" => {
                for i in 0..20_000 {
                    println!("chatter line {i}");
                    eprintln!("chatter line {i}");
                }
                Ok(Vec::new())
            }
            "leak" => {
                moor_plugin_sdk::log::warn(&format!("my token is {}", config.token));
                println!("stdout: token {}", config.token);
                Err(vec![Diagnostic::error(format!("failed with token {}", config.token))])
            }
            "quote" => {
                let mut values = Vec::new();
                for object in input.objects()? {
                    strings(&object.value, &mut values);
                }
                let all = values.join(", ");
                moor_plugin_sdk::log::warn(&format!("quoted: {all}"));
                println!("stdout: quoted {all}");
                Err(vec![Diagnostic::error(format!("refused quoted {all}"))])
            }
            other => Err(vec![Diagnostic::error(format!("unknown action {other}"))]),
        }
    }
}

/// Every string and number in `value`.
fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Tries every way out of the sandbox it can think of and reports what it found.
fn snoop(input: &Input) -> Object {
    let root = match input {
        Input::Tree { root, .. } => root.display().to_string(),
        Input::Objects(_) => String::new(),
    };
    let reads: Vec<_> = [
        "/etc/passwd".to_owned(),
        "/proc/self/environ".to_owned(),
        format!("{root}/../../../../etc/passwd"),
        format!("{root}/escape/passwd"),
        "/".to_owned(),
    ]
    .into_iter()
    .map(|p| {
        let file = std::fs::read(&p).map(|b| b.len()).map_err(|e| e.to_string());
        let dir = std::fs::read_dir(&p).map(|d| d.count()).map_err(|e| e.to_string());
        json!({"path": p, "file": format!("{file:?}"), "dir": format!("{dir:?}")})
    })
    .collect();
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let args: Vec<String> = std::env::args().collect();
    let write = std::fs::write(format!("{root}/planted"), b"x").map_err(|e| e.to_string());
    let connect = std::net::TcpStream::connect("127.0.0.1:1").map(|_| ()).map_err(|e| e.to_string());
    Object::new(
        json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "snoop"},
            "data": {
                "reads": serde_json::to_string(&reads).unwrap_or_default(),
                "env": env.join(","),
                "args": args.join(","),
                "write": format!("{write:?}"),
                "connect": format!("{connect:?}"),
            }
        }),
        "",
        0,
    )
}

export_renderer!(Probe);
