//! `keyport.v1.UserService`.

use keyport_core::SignUpOutcome;
use keyport_proto::v1::{self, user_service_server::UserService};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::{convert, status::to_status};

/// Implements `UserService` over [`Shared`].
#[derive(Clone)]
pub struct UserApi(pub Shared);

#[tonic::async_trait]
impl UserService for UserApi {
    async fn sign_up(&self, request: Request<v1::SignUpRequest>) -> Result<Response<v1::SignUpResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let outcome =
            self.0.accounts.sign_up(&body.email, &body.password, &body.name, &client).await.map_err(to_status)?;
        Ok(Response::new(match outcome {
            SignUpOutcome::SignedIn(grant) => v1::SignUpResponse {
                user: Some(convert::user(&grant.user)),
                session: Some(convert::grant(*grant)),
                verification_required: false,
            },
            SignUpOutcome::VerificationSent => {
                v1::SignUpResponse { user: None, session: None, verification_required: true }
            }
        }))
    }

    async fn get_current_user(
        &self,
        request: Request<v1::GetCurrentUserRequest>,
    ) -> Result<Response<v1::GetCurrentUserResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        Ok(Response::new(v1::GetCurrentUserResponse { user: Some(convert::user(&caller.user)) }))
    }

    async fn update_current_user(
        &self,
        request: Request<v1::UpdateCurrentUserRequest>,
    ) -> Result<Response<v1::UpdateCurrentUserResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let user =
            self.0.accounts.update_current_user(&caller, body.name.as_deref(), &client).await.map_err(to_status)?;
        Ok(Response::new(v1::UpdateCurrentUserResponse { user: Some(convert::user(&user)) }))
    }

    async fn change_password(
        &self,
        request: Request<v1::ChangePasswordRequest>,
    ) -> Result<Response<v1::ChangePasswordResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let revoked = self
            .0
            .accounts
            .change_password(&caller, &body.current_password, &body.new_password, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ChangePasswordResponse { revoked_sessions: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }

    async fn delete_current_user(
        &self,
        request: Request<v1::DeleteCurrentUserRequest>,
    ) -> Result<Response<v1::DeleteCurrentUserResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        self.0.accounts.delete_current_user(&caller, &body.password, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::DeleteCurrentUserResponse {}))
    }

    async fn request_email_verification(
        &self,
        request: Request<v1::RequestEmailVerificationRequest>,
    ) -> Result<Response<v1::RequestEmailVerificationResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        if request.metadata().contains_key("authorization") {
            let caller = self.0.caller(&request).await?;
            self.0.accounts.request_email_verification(&caller, &client).await.map_err(to_status)?;
        } else {
            let email = &request.get_ref().email;
            self.0.accounts.request_email_verification_for(email, &client).await.map_err(to_status)?;
        }
        Ok(Response::new(v1::RequestEmailVerificationResponse {}))
    }

    async fn verify_email(
        &self,
        request: Request<v1::VerifyEmailRequest>,
    ) -> Result<Response<v1::VerifyEmailResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        if !request.get_ref().code.is_empty() {
            let caller = self.0.caller(&request).await?;
            let code = &request.get_ref().code;
            let user = self.0.accounts.verify_email_with_code(&caller, code, &client).await.map_err(to_status)?;
            return Ok(Response::new(v1::VerifyEmailResponse { user: Some(convert::user(&user)) }));
        }
        let body = request.into_inner();
        let user = self.0.accounts.verify_email(&body.token, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::VerifyEmailResponse { user: Some(convert::user(&user)) }))
    }

    async fn request_password_reset(
        &self,
        request: Request<v1::RequestPasswordResetRequest>,
    ) -> Result<Response<v1::RequestPasswordResetResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        self.0.accounts.request_password_reset(&body.email, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<v1::ResetPasswordRequest>,
    ) -> Result<Response<v1::ResetPasswordResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let revoked =
            self.0.accounts.reset_password(&body.token, &body.new_password, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::ResetPasswordResponse { revoked_sessions: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }

    async fn request_email_change(
        &self,
        request: Request<v1::RequestEmailChangeRequest>,
    ) -> Result<Response<v1::RequestEmailChangeResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        self.0
            .accounts
            .request_email_change(&caller, &body.new_email, &body.password, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::RequestEmailChangeResponse {}))
    }

    async fn confirm_email_change(
        &self,
        request: Request<v1::ConfirmEmailChangeRequest>,
    ) -> Result<Response<v1::ConfirmEmailChangeResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let (user, revoked) =
            self.0.accounts.confirm_email_change(&body.token, body.end_sessions, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::ConfirmEmailChangeResponse {
            user: Some(convert::user(&user)),
            revoked_sessions: u32::try_from(revoked).unwrap_or(u32::MAX),
        }))
    }

    async fn request_password_setup(
        &self,
        request: Request<v1::RequestPasswordSetupRequest>,
    ) -> Result<Response<v1::RequestPasswordSetupResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        self.0.accounts.request_password_setup(&caller, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::RequestPasswordSetupResponse {}))
    }

    async fn set_password(
        &self,
        request: Request<v1::SetPasswordRequest>,
    ) -> Result<Response<v1::SetPasswordResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        self.0.accounts.set_password(&caller, &body.code, &body.new_password, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::SetPasswordResponse {}))
    }
}
