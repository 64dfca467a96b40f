//! Counters live in the driver's counters file, where a reader (like AeronStat) sees them.

mod common;

use common::*;
use tensorpool_aeron::{
    AddError, MAX_KEY_LENGTH, MAX_LABEL_LENGTH, TENSORPOOL_COUNTER_TYPE_ID_BASE,
    is_tensorpool_counter_type_id, tensorpool_counter_type_id,
};

#[test]
fn an_allocated_counter_is_visible_with_its_label_key_and_value() {
    let driver = driver();
    let dir = driver.dir().to_path_buf();
    {
        let client = connect(&driver);
        let type_id = tensorpool_counter_type_id(7);
        assert_eq!(type_id, TENSORPOOL_COUNTER_TYPE_ID_BASE + 7);
        assert!(is_tensorpool_counter_type_id(type_id));
        assert!(!is_tensorpool_counter_type_id(11));
        let counter = client
            .add_counter(
                type_id,
                b"stream=42",
                "tensorpool test: frames published",
                TIMEOUT,
            )
            .unwrap();
        counter.set(41);
        assert_eq!(counter.increment(), 41);
        assert_eq!(counter.add(10), 42);
        assert_eq!(counter.get(), 52);

        let reader = client.counters_reader();
        let mut found = None;
        let mut system_counters = 0;
        reader.for_each(|info| {
            if info.type_id == 0 {
                system_counters += 1;
            }
            if info.id == counter.id() {
                found = Some((
                    info.type_id,
                    info.value,
                    info.key[..9].to_vec(),
                    info.label().to_owned(),
                ));
            }
        });
        assert!(
            system_counters > 0,
            "the driver's system counters are visible too"
        );
        let (found_type, value, key, label) = found.expect("counter visible to the reader");
        assert_eq!(found_type, type_id);
        assert_eq!(value, 52);
        assert_eq!(key, b"stream=42");
        assert_eq!(label, "tensorpool test: frames published");
        assert_eq!(reader.value(counter.id()), Some(52));
        assert_eq!(
            reader.find(type_id, counter.registration_id()),
            Some(counter.id())
        );
        assert_eq!(reader.value(-1), None);
        assert_eq!(reader.value(i32::MAX), None);

        // A second client of the same driver sees the same counter.
        let other = connect(&driver);
        counter.set(99);
        assert_eq!(other.counters_reader().value(counter.id()), Some(99));

        let id = counter.id();
        drop(counter);
        wait_until("the counter to be freed", || {
            let mut still_there = false;
            reader.for_each(|info| still_there |= info.id == id && info.type_id == type_id);
            !still_there
        });
    }
    drop(driver);
    assert_removed(dir);
}

#[test]
fn oversized_keys_and_labels_are_errors() {
    let driver = driver();
    let client = connect(&driver);
    let key = vec![0u8; MAX_KEY_LENGTH + 1];
    assert_eq!(
        client
            .add_counter(tensorpool_counter_type_id(1), &key, "x", TIMEOUT)
            .unwrap_err(),
        AddError::TooLong {
            what: "counter key",
            len: MAX_KEY_LENGTH + 1,
            max: MAX_KEY_LENGTH
        }
    );
    let label = "l".repeat(MAX_LABEL_LENGTH + 1);
    assert!(matches!(
        client.add_counter(tensorpool_counter_type_id(1), b"", &label, TIMEOUT),
        Err(AddError::TooLong {
            what: "counter label",
            ..
        })
    ));
    let full = client
        .add_counter(
            tensorpool_counter_type_id(1),
            &key[..MAX_KEY_LENGTH],
            &label[..MAX_LABEL_LENGTH],
            TIMEOUT,
        )
        .unwrap();
    full.set(1);
}
