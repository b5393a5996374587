//! Bindings of the token counter: `encode`, `decode`, `count_tokens`, their batch forms, and `count_chat_tokens`.

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::tokens::{self, AllowedSpecial, ChatMessage, ChatOverheads, Encoding};

// Counting a short string takes well under a microsecond; releasing and re-taking the GIL costs about as much, so
// only inputs longer than this are counted with the GIL released (measured in benches/core/bench_tokens.py).
const DETACH_MIN_BYTES: usize = 4096;

fn encoding(name: &str) -> PyResult<Encoding> {
    Ok(name.parse::<Encoding>()?)
}

fn allowed(value: Option<&Bound<'_, PyAny>>) -> PyResult<AllowedSpecial> {
    let Some(value) = value else {
        return Ok(AllowedSpecial::None);
    };
    if let Ok(text) = value.extract::<String>() {
        return if text == "all" {
            Ok(AllowedSpecial::All)
        } else {
            Err(pyo3::exceptions::PyValueError::new_err(
                "allowed_special takes \"all\" or a set of special-token strings",
            ))
        };
    }
    let names = value
        .try_iter()?
        .map(|item| item?.extract::<String>())
        .collect::<PyResult<Vec<String>>>()?;
    Ok(AllowedSpecial::Some(names))
}

/// Token ids of `text` in `encoding` ("cl100k_base" or "o200k_base"), identical to tiktoken's.
#[pyfunction]
#[pyo3(name = "encode", signature = (text, encoding_name, allowed_special = None))]
fn py_encode(
    py: Python<'_>,
    text: &str,
    encoding_name: &str,
    allowed_special: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<u32>> {
    let encoding = encoding(encoding_name)?;
    let allowed = allowed(allowed_special)?;
    if text.len() < DETACH_MIN_BYTES {
        return Ok(tokens::encode(text, encoding, &allowed));
    }
    let owned = text.to_owned();
    Ok(py.detach(move || tokens::encode(&owned, encoding, &allowed)))
}

/// The number of tokens of `text`, without building the ids.
#[pyfunction]
#[pyo3(name = "count_tokens")]
fn py_count_tokens(py: Python<'_>, text: &str, encoding_name: &str) -> PyResult<usize> {
    let encoding = encoding(encoding_name)?;
    if text.len() < DETACH_MIN_BYTES {
        return Ok(tokens::count(text, encoding));
    }
    let owned = text.to_owned();
    Ok(py.detach(move || tokens::count(&owned, encoding)))
}

/// The text of `ids`; bytes that are not valid UTF-8 become U+FFFD, as in tiktoken.
#[pyfunction]
#[pyo3(name = "decode")]
fn py_decode(py: Python<'_>, ids: Vec<u32>, encoding_name: &str) -> PyResult<String> {
    let encoding = encoding(encoding_name)?;
    Ok(py.detach(move || tokens::decode(&ids, encoding))?)
}

/// Counts of many texts, spread over threads when the batch is large.
#[pyfunction]
#[pyo3(name = "count_tokens_batch")]
fn py_count_tokens_batch(
    py: Python<'_>,
    texts: Vec<String>,
    encoding_name: &str,
) -> PyResult<Vec<usize>> {
    let encoding = encoding(encoding_name)?;
    Ok(py.detach(move || tokens::count_batch(&texts, encoding)))
}

/// Ids of many texts, spread over threads when the batch is large.
#[pyfunction]
#[pyo3(name = "encode_batch")]
fn py_encode_batch(
    py: Python<'_>,
    texts: Vec<String>,
    encoding_name: &str,
) -> PyResult<Vec<Vec<u32>>> {
    let encoding = encoding(encoding_name)?;
    Ok(py.detach(move || tokens::encode_batch(&texts, encoding)))
}

/// Tokens a chat costs as a prompt. `messages` is a list of (role, name, content) tuples; the overheads are the
/// model family's framing per message, per name and for the reply's priming.
#[pyfunction]
#[pyo3(name = "count_chat_tokens", signature = (messages, encoding_name, per_message = 3, per_name = 1, reply = 3))]
fn py_count_chat_tokens(
    py: Python<'_>,
    messages: &Bound<'_, PyList>,
    encoding_name: &str,
    per_message: i64,
    per_name: i64,
    reply: i64,
) -> PyResult<usize> {
    let encoding = encoding(encoding_name)?;
    let owned: Vec<(String, String, String)> = messages.extract()?;
    let bytes: usize = owned
        .iter()
        .map(|(role, name, content)| role.len() + name.len() + content.len())
        .sum();
    let overheads = ChatOverheads {
        per_message,
        per_name,
        reply,
    };
    let count = move || {
        let borrowed: Vec<ChatMessage<'_>> = owned
            .iter()
            .map(|(role, name, content)| ChatMessage {
                role,
                name,
                content,
            })
            .collect();
        tokens::count_chat(&borrowed, encoding, overheads)
    };
    if bytes < DETACH_MIN_BYTES {
        return Ok(count());
    }
    Ok(py.detach(count))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_encode, m)?)?;
    m.add_function(wrap_pyfunction!(py_count_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(py_decode, m)?)?;
    m.add_function(wrap_pyfunction!(py_count_tokens_batch, m)?)?;
    m.add_function(wrap_pyfunction!(py_encode_batch, m)?)?;
    m.add_function(wrap_pyfunction!(py_count_chat_tokens, m)?)?;
    Ok(())
}
