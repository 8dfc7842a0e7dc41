//! `keyport.v1.TwoFactorService`.

use keyport_core::second_factor::FactorAnswer;
use keyport_proto::v1::{self, two_factor_service_server::TwoFactorService};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::{convert, status::to_status};

/// Implements `TwoFactorService` over [`Shared`].
#[derive(Clone)]
pub struct TwoFactorApi(pub Shared);

#[tonic::async_trait]
impl TwoFactorService for TwoFactorApi {
    async fn list_factors(
        &self,
        request: Request<v1::ListFactorsRequest>,
    ) -> Result<Response<v1::ListFactorsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let factors = self.0.accounts.list_factors(&caller).await.map_err(to_status)?;
        Ok(Response::new(v1::ListFactorsResponse {
            totp_enabled: factors.totp_enabled_at.is_some(),
            totp_enabled_at: factors.totp_enabled_at.map(convert::timestamp),
            backup_codes_left: factors.backup_codes_left,
            passkeys: factors.passkeys,
        }))
    }

    async fn enroll_totp(
        &self,
        request: Request<v1::EnrollTotpRequest>,
    ) -> Result<Response<v1::EnrollTotpResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let enrollment = self.0.accounts.enroll_totp(&caller).await.map_err(to_status)?;
        Ok(Response::new(v1::EnrollTotpResponse {
            secret: enrollment.secret,
            otpauth_uri: enrollment.otpauth_uri,
            qr_code_svg: enrollment.qr_code_svg.into_bytes(),
            expires_at: Some(convert::timestamp(enrollment.expires_at)),
        }))
    }

    async fn confirm_totp(
        &self,
        request: Request<v1::ConfirmTotpRequest>,
    ) -> Result<Response<v1::ConfirmTotpResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let (backup_codes, session) =
            self.0.accounts.confirm_totp(&caller, &request.get_ref().code, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::ConfirmTotpResponse { backup_codes, session: Some(convert::session(&session, true)) }))
    }

    async fn disable_totp(
        &self,
        request: Request<v1::DisableTotpRequest>,
    ) -> Result<Response<v1::DisableTotpResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let ended = self.0.accounts.disable_totp(&caller, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::DisableTotpResponse { revoked_sessions: u32::try_from(ended).unwrap_or(u32::MAX) }))
    }

    async fn regenerate_backup_codes(
        &self,
        request: Request<v1::RegenerateBackupCodesRequest>,
    ) -> Result<Response<v1::RegenerateBackupCodesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let backup_codes = self.0.accounts.regenerate_backup_codes(&caller, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::RegenerateBackupCodesResponse { backup_codes }))
    }

    async fn step_up(&self, request: Request<v1::StepUpRequest>) -> Result<Response<v1::StepUpResponse>, Status> {
        use v1::step_up_request::Answer;
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let answer = match &request.get_ref().answer {
            Some(Answer::TotpCode(code)) => FactorAnswer::Totp(code),
            Some(Answer::BackupCode(code)) => FactorAnswer::BackupCode(code),
            Some(Answer::Passkey(assertion)) => {
                FactorAnswer::Passkey { ceremony: Some(&assertion.ceremony), credential: &assertion.credential }
            }
            // Nothing to check: a wrong answer, counted like one.
            None => FactorAnswer::Totp(""),
        };
        let session = self.0.accounts.step_up(&caller, answer, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::StepUpResponse { session: Some(convert::session(&session, true)) }))
    }

    async fn start_passkey_step_up(
        &self,
        request: Request<v1::StartPasskeyStepUpRequest>,
    ) -> Result<Response<v1::StartPasskeyStepUpResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let started = self.0.accounts.start_passkey_step_up(&caller).await.map_err(to_status)?;
        Ok(Response::new(v1::StartPasskeyStepUpResponse {
            ceremony: started.ceremony,
            options: started.options,
            expires_at: Some(convert::timestamp(started.expires_at)),
        }))
    }
}
