//! What an operator can do about an error: the `hint:` lines under `error:`.
//!
//! Every crate's error type implements [`Hint`], so the binary asks each error of a
//! chain the same question whatever crate raised it (uv's `uv-errors` does the same).
//! It lives here because every other crate depends on `bundle-format`.

/// An error that may know its remedy.
pub trait Hint {
    /// What the operator can do about it, when that is known: one sentence, with the
    /// exact flag, file or command to use.
    fn hint(&self) -> Option<String>;
}

/// A boxed error (kept small in an enum) knows what the error it holds knows.
impl<T: Hint + ?Sized> Hint for Box<T> {
    fn hint(&self) -> Option<String> {
        (**self).hint()
    }
}
