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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::applicant::Privilege;

    fn applicant(body: serde_json::Value) -> Applicant {
        Applicant::parse(body.as_object().unwrap(), Privilege::Standard).unwrap()
    }

    #[test]
    fn the_stored_applicant_keeps_no_client_ip_nor_device_id() {
        let full = applicant(json!({
            "email": "ada@analytical.example",
            "client_ip": "198.51.100.23",
            "device_id": "dev-1",
        }));
        let stored = stored(&full).expect("an applicant field was given");
        assert!(stored.email == full.email && stored.email.is_some());
        assert!(stored.client_ip.is_none() && stored.device_id.is_none());
    }

    #[test]
    fn the_stored_applicant_keeps_no_admin_fields() {
        let body = json!({ "email": "ada@analytical.example", "notes": "call back in May" });
        let full = Applicant::parse(body.as_object().unwrap(), Privilege::Admin).unwrap();
        assert!(full.admin.notes.is_some());
        let stored = stored(&full).expect("an applicant field was given");
        assert!(stored.admin == Default::default());
    }

    #[test]
    fn signals_alone_store_no_applicant() {
        let signals = applicant(json!({ "client_ip": "198.51.100.23", "device_id": "dev-1" }));
        assert!(stored(&signals).is_none());
    }
}
