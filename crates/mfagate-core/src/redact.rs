//! `Debug` for types that carry passwords, tokens, TOTP secrets or recovery codes: it prints
//! the fields named and hides the rest, so that a `{:?}` in a log line or a panic message never
//! shows a secret.

/// `debug_showing!(Type { shown_field, ... })` implements `Debug` for `Type` with only the
/// named fields; the others print as `..`.
#[macro_export]
macro_rules! debug_showing {
    ($type:ident { $($shown:ident),* $(,)? }) => {
        impl ::std::fmt::Debug for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($shown), &self.$shown))*
                    .finish_non_exhaustive()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    struct Login {
        username: String,
        password: String,
    }
    debug_showing!(Login { username });

    #[test]
    fn hidden_fields_never_print() {
        let login = Login {
            username: "ann".into(),
            password: "hunter2-secret".into(),
        };
        let printed = format!("{login:?} {login:#?}");
        assert!(printed.contains("ann"), "{printed}");
        assert!(!printed.contains(&login.password), "{printed}");
    }
}
