//! An error with what caused it, for messages that must say why: a client's top-level
//! message ("Transport handshake failed", "ServiceError: client error (Connect)") names
//! the step, its sources the reason ("Connection refused", "UnknownIssuer").

/// `error` and its sources joined by `: `, each message once (a message that repeats its
/// source's text is not shown twice).
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let message = e.to_string();
        if !messages.iter().any(|m| m.contains(&message)) {
            messages.push(message);
        }
        next = e.source();
    }
    messages.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(messages: &[&'static str]) -> Layer {
        let mut layer: Option<Box<Layer>> = None;
        for message in messages.iter().rev() {
            layer = Some(Box::new(Layer { message, source: layer }));
        }
        *layer.unwrap()
    }

    #[test]
    fn every_cause_once() {
        let error = layers(&["client error (Connect)", "tcp connect error", "Connection refused (os error 111)"]);
        assert_eq!(causes(&error), "client error (Connect): tcp connect error: Connection refused (os error 111)");
        let error = layers(&["ServiceError: client error (Connect)", "client error (Connect)", "refused"]);
        assert_eq!(causes(&error), "ServiceError: client error (Connect): refused");
    }
}
