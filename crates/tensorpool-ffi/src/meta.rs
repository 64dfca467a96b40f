//! Data-source metadata from C (issue 18, Wire Spec §10.3): the producer's attributes and
//! meta blobs, what a consumer received (attributes, source name, the last blob).

use std::ffi::c_char;

use tensorpool::meta::MetaAttribute;

use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles;

/// One metadata attribute. In [`tp_producer_set_meta`] the strings are NUL-terminated UTF-8
/// and copied; from [`tp_consumer_meta_attribute`] they point into the consumer (valid until
/// its next poll) and are NUL-terminated too.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_meta_attribute {
    /// Attribute name.
    pub key: *const c_char,
    /// How `value` is encoded (`text/plain`, `application/json`, ...; NULL: `text/plain`).
    pub format: *const c_char,
    /// The value bytes.
    pub value: *const u8,
    /// Bytes at `value`.
    pub value_len: usize,
}

/// The last meta blob a consumer reassembled and verified.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_meta_blob_view {
    /// `DataSourceMeta` version the blob belongs to.
    pub meta_version: u32,
    /// Application-defined type.
    pub blob_type: u32,
    /// The bytes (inside the consumer, valid until its next poll).
    pub data: *const u8,
    /// Bytes at `data`.
    pub len: usize,
}

fn attribute(a: &tp_meta_attribute, i: usize) -> FfiResult<MetaAttribute> {
    let key = handles::string(a.key, "attrs[i].key")?;
    if key.is_empty() {
        return err(TP_ERR_INVALID_ARGUMENT, format!("attrs[{i}].key is empty"));
    }
    let format = handles::opt_string(a.format, "attrs[i].format")?.unwrap_or("text/plain");
    let value = handles::slice(a.value, a.value_len, "attrs[i].value")?;
    Ok(MetaAttribute {
        key: key.to_owned(),
        format: format.to_owned(),
        value: value.to_vec(),
    })
}

/// Replaces the data source's attributes: bumps `meta_version` (stamped on every later frame)
/// and sends `DataSourceMeta` at the next `do_work`. `version` (may be NULL) gets the new
/// version. `TP_ERR_INVALID_ARGUMENT` when the attributes do not fit a message.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_set_meta(
    producer: *mut crate::producer::tp_producer,
    attrs: *const tp_meta_attribute,
    count: usize,
    version: *mut u32,
) -> tp_status {
    guard("tp_producer_set_meta", || {
        let p = crate::producer::get(producer)?.producer()?;
        let attrs = handles::slice(attrs, count, "attrs")?
            .iter()
            .enumerate()
            .map(|(i, a)| attribute(a, i))
            .collect::<FfiResult<Vec<_>>>()?;
        let v = p
            .set_meta(&attrs)
            .map_err(|e| FfiError::new(TP_ERR_INVALID_ARGUMENT, format!("set_meta: {e}")))?;
        handles::write_opt(version, v);
        Ok(())
    })
}

/// Queues a metadata blob (calibration table, mask, ...) of `len` bytes (copied) for the
/// current `meta_version`; it goes out over the next `do_work` cycles with a CRC32C.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_publish_meta_blob(
    producer: *mut crate::producer::tp_producer,
    blob_type: u32,
    data: *const u8,
    len: usize,
) -> tp_status {
    guard("tp_producer_publish_meta_blob", || {
        let p = crate::producer::get(producer)?.producer()?;
        let bytes = handles::slice(data, len, "data")?;
        p.publish_meta_blob(blob_type, bytes.to_vec());
        Ok(())
    })
}

/// The consumer's metadata: `version` and `count` (attributes) when it has received
/// `DataSourceMeta`; `TP_ERR_STATE` before (either out-pointer may be NULL).
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_meta(
    consumer: *mut crate::consumer::tp_consumer,
    version: *mut u32,
    count: *mut usize,
) -> tp_status {
    guard("tp_consumer_meta", || {
        let c = &crate::consumer::get(consumer)?.consumer;
        match c.meta() {
            Some((v, attrs)) => {
                handles::write_opt(version, v);
                handles::write_opt(count, attrs.len());
                Ok(())
            }
            None => err(TP_ERR_STATE, "no DataSourceMeta received yet"),
        }
    })
}

thread_local! {
    /// NUL-terminated copies of the last attribute read on this thread (key, format, value).
    static ATTR: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Attribute `index` of the consumer's metadata. `key` and `format` are NUL-terminated
/// copies valid until the next call of this function on the thread; `value` points into the
/// consumer (valid until its next poll). `TP_ERR_INVALID_ARGUMENT` past the attributes,
/// `TP_ERR_STATE` before any metadata.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_meta_attribute(
    consumer: *mut crate::consumer::tp_consumer,
    index: usize,
    out: *mut tp_meta_attribute,
) -> tp_status {
    guard("tp_consumer_meta_attribute", || {
        let c = &crate::consumer::get(consumer)?.consumer;
        let out = handles::out(out, "out")?;
        let Some((_, attrs)) = c.meta() else {
            return err(TP_ERR_STATE, "no DataSourceMeta received yet");
        };
        let Some(a) = attrs.get(index) else {
            return err(
                TP_ERR_INVALID_ARGUMENT,
                format!("attribute {index} of {}", attrs.len()),
            );
        };
        ATTR.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (key, format) = &mut *cell;
            for (buf, s) in [(&mut *key, &a.key), (&mut *format, &a.format)] {
                buf.clear();
                buf.extend(s.bytes().map(|b| if b == 0 { b'?' } else { b }));
                buf.push(0);
            }
            *out = tp_meta_attribute {
                key: key.as_ptr().cast::<c_char>(),
                format: format.as_ptr().cast::<c_char>(),
                value: a.value.as_ptr(),
                value_len: a.value.len(),
            };
        });
        Ok(())
    })
}

/// Copies the data source's name (`DataSourceAnnounce`; "" before one arrived) into `buf`,
/// like `tp_context_aeron_dir`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_source_name(
    consumer: *mut crate::consumer::tp_consumer,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> tp_status {
    guard("tp_consumer_source_name", || {
        let c = &crate::consumer::get(consumer)?.consumer;
        handles::copy_string(c.source_name().unwrap_or(""), buf, cap, len)
    })
}

/// The last meta blob reassembled and verified. `TP_ERR_STATE` when none arrived yet.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_meta_blob(
    consumer: *mut crate::consumer::tp_consumer,
    out: *mut tp_meta_blob_view,
) -> tp_status {
    guard("tp_consumer_meta_blob", || {
        let c = &crate::consumer::get(consumer)?.consumer;
        let out = handles::out(out, "out")?;
        match c.meta_blob() {
            Some(b) => {
                *out = tp_meta_blob_view {
                    meta_version: b.meta_version,
                    blob_type: b.blob_type,
                    data: b.data.as_ptr(),
                    len: b.data.len(),
                };
                Ok(())
            }
            None => err(TP_ERR_STATE, "no meta blob received yet"),
        }
    })
}
