//! Where replies and pushed messages go: the reply queue's URL, and the SQS
//! client to reach it, built on the first trigger that needs it.

use crate::outbox::{Outbox, OutboxError};
use tokio::sync::OnceCell;

/// The reply queue (`REPLY_QUEUE_URL`) and its client.
#[derive(Debug, Default)]
pub(crate) struct ReplyTarget {
    /// The queue's URL; only SQS events and pushes need it, so its absence
    /// is an error only for them.
    url: Option<String>,
    /// Built on first use: a Function URL call never pays for loading the
    /// AWS configuration.
    sqs: OnceCell<aws_sdk_sqs::Client>,
}

impl ReplyTarget {
    /// The reply queue at `url`, if any.
    pub(crate) fn new(url: Option<String>) -> ReplyTarget {
        ReplyTarget {
            url,
            sqs: OnceCell::new(),
        }
    }

    /// The queue's URL.
    pub(crate) fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Sends to `url` from now on.
    pub(crate) fn set_url(&mut self, url: String) {
        self.url = Some(url);
    }

    /// Uses `client` instead of one built from the AWS environment.
    pub(crate) fn set_client(&mut self, client: aws_sdk_sqs::Client) {
        self.sqs = OnceCell::new_with(Some(client));
    }

    /// The SQS client, built from the AWS environment on first use.
    pub(crate) async fn client(&self) -> &aws_sdk_sqs::Client {
        self.sqs
            .get_or_init(|| async {
                let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_sqs::Client::new(&config)
            })
            .await
    }

    /// An outbox writing to the reply queue.
    pub(crate) async fn outbox(&self) -> Result<Outbox, OutboxError> {
        let url = self.url.as_deref().ok_or(OutboxError::NoReplyQueue)?;
        Ok(Outbox::new(self.client().await.clone(), url))
    }
}
