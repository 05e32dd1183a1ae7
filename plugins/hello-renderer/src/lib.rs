//! The smallest useful Moor plugin: a renderer that labels every object it is given.
use moor_plugin_sdk::{Info, Input, Object, Outcome, Renderer, export_renderer};

pub struct Hello;

impl Renderer for Hello {
    type Config = serde_json::Value;

    fn info() -> Info {
        Info::new("hello-renderer", env!("CARGO_PKG_VERSION")).description("labels every object hello=world")
    }

    fn render(_config: Self::Config, input: Input) -> Outcome<Vec<Object>> {
        let mut objects = input.objects()?;
        for object in &mut objects {
            object.set_label("hello", "world");
        }
        Ok(objects)
    }
}

export_renderer!(Hello);
