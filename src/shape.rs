//! Shapes with checked arithmetic: a hostile shape never overflows or triggers a giant allocation.

/// Number of elements in `shape` (`1` for a scalar), or `None` on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Bytes taken by `shape` at `elem_size` bytes per element, or `None` on overflow.
pub fn byte_len(shape: &[usize], elem_size: usize) -> Option<usize> {
    numel(shape)?.checked_mul(elem_size)
}

/// `[2, 3]` style rendering for messages and tables.
pub fn show(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// [`show`] for a shape with free dimensions, written `?` (`[?, 32, 32, 3]`).
pub fn show_opt(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("?".into(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_has_one_element() {
        assert_eq!(numel(&[]), Some(1));
        assert_eq!(byte_len(&[], 4), Some(4));
    }

    #[test]
    fn zero_dimension_has_no_bytes() {
        assert_eq!(byte_len(&[3, 0, 7], 4), Some(0));
    }

    #[test]
    fn overflow_is_detected() {
        assert_eq!(numel(&[usize::MAX, 2]), None);
        assert_eq!(byte_len(&[1 << 62], 4), None);
    }
}
