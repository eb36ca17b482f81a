//! QR codes for the `otpauth://` URI: an SVG document and a PNG data URI.

use qrcode::{Color, EcLevel, QrCode};

use crate::error::Error;

/// Pixels per module in the PNG; the quiet zone is the standard 4 modules.
const PNG_SCALE: usize = 6;
const QUIET_ZONE: usize = 4;

fn encode(text: &str) -> Result<QrCode, Error> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| Error::Internal(format!("QR encoding failed: {e}")))
}

pub fn svg(text: &str) -> Result<String, Error> {
    let code = encode(text)?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// `data:image/png;base64,...`: an 8-bit greyscale PNG, black modules on white.
pub fn png_data_uri(text: &str) -> Result<String, Error> {
    let code = encode(text)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (index % modules, index / modules);
        for dy in 0..PNG_SCALE {
            let y = (my + QUIET_ZONE) * PNG_SCALE + dy;
            let row_start = y * side + (mx + QUIET_ZONE) * PNG_SCALE;
            if let Some(row) = pixels.get_mut(row_start..row_start + PNG_SCALE) {
                row.fill(0);
            }
        }
    }
    let mut png_bytes = Vec::new();
    {
        let side = u32::try_from(side).map_err(|_| Error::Internal("QR too large".into()))?;
        let mut encoder = png::Encoder::new(&mut png_bytes, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| Error::Internal(format!("PNG encoding failed: {e}")))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| Error::Internal(format!("PNG encoding failed: {e}")))?;
    }
    Ok(format!(
        "data:image/png;base64,{}",
        data_encoding::BASE64.encode(&png_bytes)
    ))
}
