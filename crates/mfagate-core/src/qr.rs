//! QR codes for the `otpauth://` URI: an SVG document and a PNG data URI.
//!
//! Both images come from one encoding: choosing the QR code's mask (eight candidates, each
//! scored) is most of the work, and an enrolment was paying it twice. The PNG is 1-bit
//! greyscale: a QR code has two colours, and eight times fewer bytes to filter and deflate
//! made it the cheaper half (together the two halves were half of an enrolment's CPU on
//! SQLite, `perf` of the benchmark's S3).

use qrcode::{Color, EcLevel, QrCode};

use crate::error::Error;

/// Pixels per module in the PNG; the quiet zone is the standard 4 modules.
const PNG_SCALE: usize = 6;
const QUIET_ZONE: usize = 4;

/// The two renderings of one QR code.
pub struct QrImages {
    /// An SVG document.
    pub svg: String,
    /// `data:image/png;base64,...`: a 1-bit greyscale PNG, black modules on white.
    pub png_data_uri: String,
}

/// `text` as a QR code (error correction M), rendered as SVG and as PNG.
pub fn images(text: &str) -> Result<QrImages, Error> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| Error::Internal(format!("QR encoding failed: {e}")))?;
    Ok(QrImages {
        svg: code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        png_data_uri: png_data_uri(&code)?,
    })
}

fn png_data_uri(code: &QrCode) -> Result<String, Error> {
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    // One bit per pixel, most significant first; 1 is white. Each module row is drawn once
    // and repeated PNG_SCALE times; the quiet zone's rows are all white.
    let row_bytes = side.div_ceil(8);
    let white_row = vec![0xffu8; row_bytes];
    let mut pixels = Vec::with_capacity(row_bytes * side);
    for _ in 0..QUIET_ZONE * PNG_SCALE {
        pixels.extend_from_slice(&white_row);
    }
    for module_row in colors.chunks(modules) {
        let mut row = white_row.clone();
        for (mx, color) in module_row.iter().enumerate() {
            if *color != Color::Dark {
                continue;
            }
            let first = (mx + QUIET_ZONE) * PNG_SCALE;
            for x in first..first + PNG_SCALE {
                if let Some(byte) = row.get_mut(x / 8) {
                    *byte &= !(0x80 >> (x % 8));
                }
            }
        }
        for _ in 0..PNG_SCALE {
            pixels.extend_from_slice(&row);
        }
    }
    for _ in 0..QUIET_ZONE * PNG_SCALE {
        pixels.extend_from_slice(&white_row);
    }
    let mut png_bytes = Vec::new();
    {
        let side = u32::try_from(side).map_err(|_| Error::Internal("QR too large".into()))?;
        let mut encoder = png::Encoder::new(&mut png_bytes, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "a test")]

    use super::*;

    /// Every pixel of the PNG is the colour of the module it lies in (white in the quiet zone).
    #[test]
    fn the_png_draws_each_module_in_its_colour_with_a_quiet_zone() {
        let text = "otpauth://totp/mfagate:ann?secret=JBSWY3DPEHPK3PXP&issuer=mfagate";
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
        let uri = images(text).unwrap().png_data_uri;
        let bytes = data_encoding::BASE64
            .decode(
                uri.strip_prefix("data:image/png;base64,")
                    .unwrap()
                    .as_bytes(),
            )
            .unwrap();
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        let (modules, colors) = (code.width(), code.to_colors());
        let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
        assert_eq!((frame.width as usize, frame.height as usize), (side, side));
        for y in 0..side {
            for x in 0..side {
                let (mx, my) = (x / PNG_SCALE, y / PNG_SCALE);
                let inside = QUIET_ZONE..QUIET_ZONE + modules;
                let dark = inside.contains(&mx)
                    && inside.contains(&my)
                    && colors[(my - QUIET_ZONE) * modules + mx - QUIET_ZONE] == Color::Dark;
                let expected = if dark { 0 } else { 255 };
                assert_eq!(pixels[y * side + x], expected, "pixel ({x}, {y})");
            }
        }
    }

    #[test]
    fn the_svg_is_a_whole_svg_document() {
        let svg = images("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP")
            .unwrap()
            .svg;
        assert!(
            svg.starts_with("<?xml") || svg.starts_with("<svg"),
            "{svg:.40}"
        );
        assert!(svg.contains("</svg>"));
    }
}
