//! The KRM ResourceList decoder: a function's output, whatever it is, gives objects and
//! results or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use moor::plugins::Document;
use moor::plugins::krm::resource_list::Request;

fuzz_target!(|stdout: &[u8]| {
    let docs = [Document {
        json: r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#.into(),
        file: "app/a.yaml".into(),
        line: 3,
    }];
    let request = Request::new(&docs, &serde_json::json!({})).unwrap();
    let _ = request.response(stdout, "app");
    let _ = request.response(stdout, "");
});
