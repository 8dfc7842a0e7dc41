//! The calling user's second factors ([`KeyportClient`] methods over
//! `keyport.v1.TwoFactorService`): enrol and confirm an authenticator app,
//! turn it off, replace the backup codes, step a session up to AAL2.

use std::time::SystemTime;

use keyport_proto::v1::{self, two_factor_service_client::TwoFactorServiceClient};
use tonic::Status;

use crate::{
    client::{ClientInfo, FactorAnswer, KeyportClient},
    error::Error,
    principal::system_time,
};

/// What second factors a user has on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorStatus {
    /// Whether the authenticator app is on.
    pub totp_enabled: bool,
    /// Unused backup codes.
    pub backup_codes_left: u32,
    /// How many passkeys the user has.
    pub passkeys: u32,
}

/// A started enrolment of an authenticator app, to show once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrollment {
    /// The secret in base32, for typing into the app by hand.
    pub secret: String,
    /// The `otpauth://totp/...` URI the QR code holds.
    pub otpauth_uri: String,
    /// The QR code, an SVG document to put on the page.
    pub qr_code_svg: String,
    /// When the enrolment lapses unless confirmed.
    pub expires_at: SystemTime,
}

impl KeyportClient {
    /// The second factors of `token`'s user.
    pub async fn list_factors(&self, token: &str, client: &ClientInfo) -> Result<FactorStatus, Error> {
        let response = self
            .once(|channel| {
                let request = self.request(v1::ListFactorsRequest {}, Some(token), client);
                async move { TwoFactorServiceClient::new(channel).list_factors(request).await }
            })
            .await?;
        Ok(FactorStatus {
            totp_enabled: response.totp_enabled,
            backup_codes_left: response.backup_codes_left,
            passkeys: response.passkeys,
        })
    }

    /// Starts enrolling an authenticator app (needs a recent sign-in).
    pub async fn enroll_totp(&self, token: &str, client: &ClientInfo) -> Result<TotpEnrollment, Error> {
        let response = self
            .once(|channel| {
                let request = self.request(v1::EnrollTotpRequest {}, Some(token), client);
                async move { TwoFactorServiceClient::new(channel).enroll_totp(request).await }
            })
            .await?;
        let qr_code_svg = String::from_utf8(response.qr_code_svg)
            .map_err(|_| Status::internal("EnrollTotp answered a QR code that is not UTF-8"))?;
        Ok(TotpEnrollment {
            secret: response.secret,
            otpauth_uri: response.otpauth_uri,
            qr_code_svg,
            expires_at: system_time(response.expires_at.as_ref()),
        })
    }

    /// Turns the pending app on with a code from it; returns the backup
    /// codes, to show once. The user's other sessions end.
    pub async fn confirm_totp(&self, token: &str, code: &str, client: &ClientInfo) -> Result<Vec<String>, Error> {
        let message = v1::ConfirmTotpRequest { code: code.to_owned() };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { TwoFactorServiceClient::new(channel).confirm_totp(request).await }
            })
            .await?;
        Ok(response.backup_codes)
    }

    /// Turns the app off (needs a recent second factor); returns how many
    /// other sessions ended.
    pub async fn disable_totp(&self, token: &str, client: &ClientInfo) -> Result<u32, Error> {
        let response = self
            .once(|channel| {
                let request = self.request(v1::DisableTotpRequest {}, Some(token), client);
                async move { TwoFactorServiceClient::new(channel).disable_totp(request).await }
            })
            .await?;
        Ok(response.revoked_sessions)
    }

    /// Replaces the backup codes (needs a recent second factor); returns
    /// the new ones, to show once.
    pub async fn regenerate_backup_codes(&self, token: &str, client: &ClientInfo) -> Result<Vec<String>, Error> {
        let response = self
            .once(|channel| {
                let request = self.request(v1::RegenerateBackupCodesRequest {}, Some(token), client);
                async move { TwoFactorServiceClient::new(channel).regenerate_backup_codes(request).await }
            })
            .await?;
        Ok(response.backup_codes)
    }

    /// Passes a second factor again on `token`'s session: it becomes AAL2
    /// as of now.
    pub async fn step_up(&self, token: &str, answer: FactorAnswer<'_>, client: &ClientInfo) -> Result<(), Error> {
        use v1::step_up_request::Answer;
        let answer = match answer {
            FactorAnswer::Totp(code) => Answer::TotpCode(code.to_owned()),
            FactorAnswer::BackupCode(code) => Answer::BackupCode(code.to_owned()),
            // Nothing to check against here: a wrong answer, as the server counts it.
            FactorAnswer::Passkey(credential) => {
                Answer::Passkey(v1::PasskeyAssertion { ceremony: String::new(), credential: credential.to_owned() })
            }
        };
        let message = v1::StepUpRequest { answer: Some(answer) };
        self.once(|channel| {
            let request = self.request(message.clone(), Some(token), client);
            async move { TwoFactorServiceClient::new(channel).step_up(request).await }
        })
        .await?;
        Ok(())
    }
}
