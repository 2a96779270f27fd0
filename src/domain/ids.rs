//! Identifier newtypes, so an operator id can never be passed where a
//! conversation id is expected.

use serde::{Deserialize, Serialize};

/// Declares a `u64` identifier newtype that serialises as a bare integer.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = u64)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

id_type!(
    /// An operator (a user of the console, admin or not).
    OperatorId
);
id_type!(
    /// A livechat or direct conversation.
    ConversationId
);
id_type!(
    /// An expertise such as "Billing".
    ExpertiseId
);
id_type!(
    /// A livechat channel (a website's entry point with its operator team).
    ChannelId
);
id_type!(
    /// A message, increasing within its conversation.
    MessageId
);
id_type!(
    /// A chatbot script.
    ChatbotId
);
id_type!(
    /// A step of a chatbot script, unique within its chatbot.
    StepId
);
id_type!(
    /// An answer of a selection step, unique within its chatbot.
    AnswerId
);
id_type!(
    /// A canned response (a saved reply).
    CannedId
);
