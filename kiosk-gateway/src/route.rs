//! Routing to a municipality's issuer: in-process in the all-in-one mode, or over mutual-TLS
//! gRPC to a separate issuer process. Both speak `IssuerService`, so the two modes cannot
//! behave differently: the in-process link calls the very service implementation the issuer
//! process serves, without the network.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kiosk_proto::v1::issuer_service_client::IssuerServiceClient;
use kiosk_proto::v1::issuer_service_server::IssuerService;
use kiosk_proto::v1::{
    ConfirmRequest, ConfirmResponse, IssuerMenuRequest, IssuerMenuResponse, IssuerQuoteRequest,
    IssuerQuoteResponse, ListPendingRequest, ListPendingResponse, RenderRequest, RenderResponse,
    VoidPendingRequest, VoidRequest, VoidResponse,
};
use tonic::transport::Channel;

/// One municipality's issuer, however it is reached.
#[tonic::async_trait]
pub trait IssuerLink: Send + Sync {
    /// `IssuerService.GetMenu`.
    async fn get_menu(
        &self,
        request: IssuerMenuRequest,
    ) -> Result<IssuerMenuResponse, tonic::Status>;
    /// `IssuerService.Quote`.
    async fn quote(
        &self,
        request: IssuerQuoteRequest,
    ) -> Result<IssuerQuoteResponse, tonic::Status>;
    /// `IssuerService.Render`, bounded by `deadline`.
    async fn render(
        &self,
        request: RenderRequest,
        deadline: Duration,
    ) -> Result<RenderResponse, tonic::Status>;
    /// `IssuerService.Void`.
    async fn void(&self, request: VoidRequest) -> Result<VoidResponse, tonic::Status>;
    /// `IssuerService.Confirm`.
    async fn confirm(&self, request: ConfirmRequest) -> Result<ConfirmResponse, tonic::Status>;
    /// `IssuerService.ListPending`.
    async fn list_pending(
        &self,
        request: ListPendingRequest,
    ) -> Result<ListPendingResponse, tonic::Status>;
    /// `IssuerService.VoidPending`.
    async fn void_pending(
        &self,
        request: VoidPendingRequest,
    ) -> Result<VoidResponse, tonic::Status>;
}

/// The issuer's service called in this process.
pub struct InProcess<S>(pub Arc<S>);

#[tonic::async_trait]
impl<S: IssuerService> IssuerLink for InProcess<S> {
    async fn get_menu(
        &self,
        request: IssuerMenuRequest,
    ) -> Result<IssuerMenuResponse, tonic::Status> {
        Ok(self
            .0
            .get_menu(tonic::Request::new(request))
            .await?
            .into_inner())
    }

    async fn quote(
        &self,
        request: IssuerQuoteRequest,
    ) -> Result<IssuerQuoteResponse, tonic::Status> {
        Ok(self
            .0
            .quote(tonic::Request::new(request))
            .await?
            .into_inner())
    }

    async fn render(
        &self,
        request: RenderRequest,
        deadline: Duration,
    ) -> Result<RenderResponse, tonic::Status> {
        match tokio::time::timeout(deadline, self.0.render(tonic::Request::new(request))).await {
            Ok(response) => Ok(response?.into_inner()),
            Err(_) => Err(tonic::Status::deadline_exceeded("issuer render timed out")),
        }
    }

    async fn void(&self, request: VoidRequest) -> Result<VoidResponse, tonic::Status> {
        Ok(self
            .0
            .void(tonic::Request::new(request))
            .await?
            .into_inner())
    }

    async fn confirm(&self, request: ConfirmRequest) -> Result<ConfirmResponse, tonic::Status> {
        Ok(self
            .0
            .confirm(tonic::Request::new(request))
            .await?
            .into_inner())
    }

    async fn list_pending(
        &self,
        request: ListPendingRequest,
    ) -> Result<ListPendingResponse, tonic::Status> {
        Ok(self
            .0
            .list_pending(tonic::Request::new(request))
            .await?
            .into_inner())
    }

    async fn void_pending(
        &self,
        request: VoidPendingRequest,
    ) -> Result<VoidResponse, tonic::Status> {
        Ok(self
            .0
            .void_pending(tonic::Request::new(request))
            .await?
            .into_inner())
    }
}

/// An issuer process reached over gRPC (the channel carries the gateway's client certificate).
pub struct Remote {
    client: IssuerServiceClient<Channel>,
}

impl Remote {
    /// A link over `channel`. PDFs can exceed tonic's 4 MiB default decode limit.
    pub fn new(channel: Channel) -> Self {
        Remote {
            client: IssuerServiceClient::new(channel).max_decoding_message_size(64 << 20),
        }
    }
}

#[tonic::async_trait]
impl IssuerLink for Remote {
    async fn get_menu(
        &self,
        request: IssuerMenuRequest,
    ) -> Result<IssuerMenuResponse, tonic::Status> {
        Ok(self.client.clone().get_menu(request).await?.into_inner())
    }

    async fn quote(
        &self,
        request: IssuerQuoteRequest,
    ) -> Result<IssuerQuoteResponse, tonic::Status> {
        Ok(self.client.clone().quote(request).await?.into_inner())
    }

    async fn render(
        &self,
        request: RenderRequest,
        deadline: Duration,
    ) -> Result<RenderResponse, tonic::Status> {
        let mut request = tonic::Request::new(request);
        // The deadline travels as grpc-timeout, so the issuer stops working when we stop
        // waiting.
        request.set_timeout(deadline);
        match tokio::time::timeout(deadline, self.client.clone().render(request)).await {
            Ok(response) => Ok(response?.into_inner()),
            Err(_) => Err(tonic::Status::deadline_exceeded("issuer render timed out")),
        }
    }

    async fn void(&self, request: VoidRequest) -> Result<VoidResponse, tonic::Status> {
        Ok(self.client.clone().void(request).await?.into_inner())
    }

    async fn confirm(&self, request: ConfirmRequest) -> Result<ConfirmResponse, tonic::Status> {
        Ok(self.client.clone().confirm(request).await?.into_inner())
    }

    async fn list_pending(
        &self,
        request: ListPendingRequest,
    ) -> Result<ListPendingResponse, tonic::Status> {
        Ok(self
            .client
            .clone()
            .list_pending(request)
            .await?
            .into_inner())
    }

    async fn void_pending(
        &self,
        request: VoidPendingRequest,
    ) -> Result<VoidResponse, tonic::Status> {
        Ok(self
            .client
            .clone()
            .void_pending(request)
            .await?
            .into_inner())
    }
}

/// The issuers by municipality code.
#[derive(Clone, Default)]
pub struct IssuerDirectory {
    links: HashMap<String, Arc<dyn IssuerLink>>,
}

impl IssuerDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        IssuerDirectory::default()
    }

    /// Routes `municipality_code` to `link`.
    pub fn insert(&mut self, municipality_code: &str, link: Arc<dyn IssuerLink>) {
        self.links.insert(municipality_code.to_owned(), link);
    }

    /// The issuer of a municipality.
    pub fn get(&self, municipality_code: &str) -> Option<Arc<dyn IssuerLink>> {
        self.links.get(municipality_code).cloned()
    }

    /// Every routed municipality with its issuer, in code order.
    pub fn all(&self) -> Vec<(String, Arc<dyn IssuerLink>)> {
        let mut all: Vec<_> = self
            .links
            .iter()
            .map(|(code, link)| (code.clone(), link.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
