//! What the handlers share about the applicant of a start: which part of it is stored.
use crate::domain::applicant::Applicant;

/// The applicant as the trial stores it: `None` when the start carried no applicant field (the
/// stored form, [`Applicant::to_json`], never holds the client IP, the device id or the admin
/// fields).
pub fn stored(applicant: &Applicant) -> Option<Applicant> {
    let json = applicant.to_json();
    if json.as_object().is_some_and(|o| o.is_empty()) {
        return None;
    }
    Some(Applicant {
        client_ip: None,
        device_id: None,
        admin: Default::default(),
        ..applicant.clone()
    })
}
