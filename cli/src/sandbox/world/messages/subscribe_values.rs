//! WeChat's value rules for subscribe-message data (docs/wechat.md#subscribe-data-values, "订阅消息参数值内容限制说明"),
//! as the emulator enforces them. Written from the table, independently of the send
//! validation wxpush does before calling WeChat.

fn is_chinese(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}')
}

fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() && !is_chinese(c)
}

/// `None` when the value is acceptable for the key's type, else WeChat's complaint.
pub fn check_subscribe_value(key: &str, value: &str) -> Option<String> {
    let kind: String = key.chars().take_while(|c| !c.is_ascii_digit()).collect();
    let n = value.chars().count();
    if value.is_empty() {
        return Some(format!("argument invalid! data.{key}.value is empty"));
    }
    let ok = match kind.as_str() {
        "thing" => n <= 20,
        "number" => n <= 32 && value.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "letter" => n <= 32 && value.chars().all(|c| c.is_ascii_alphabetic()),
        "symbol" => n <= 5 && value.chars().all(is_symbol),
        "character_string" => n <= 32 && !value.chars().any(is_chinese),
        "phone_number" => n <= 17 && value.chars().all(|c| c.is_ascii_digit() || is_symbol(c)),
        "car_number" => {
            let chars: Vec<char> = value.chars().collect();
            n <= 8
                && chars.iter().enumerate().all(|(i, c)| {
                    c.is_ascii_alphanumeric()
                        || (is_chinese(*c) && (i == 0 || i == chars.len() - 1))
                })
        }
        "name" => {
            if value.chars().any(is_chinese) {
                n <= 10
            } else {
                n <= 20
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphabetic() || is_symbol(c) || c == ' ')
            }
        }
        "phrase" => n <= 5 && value.chars().all(is_chinese),
        "amount" => {
            let digits: String = value.chars().filter(|c| c.is_ascii_digit()).collect();
            let first = value.chars().next().unwrap_or(' ');
            !digits.is_empty()
                && digits.len() <= 10
                && (is_symbol(first) || first.is_ascii_digit())
                && value
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '元' || is_symbol(c))
        }
        "time" | "date" => value.chars().any(|c| c.is_ascii_digit()) && n <= 64,
        _ => true,
    };
    (!ok).then(|| format!("argument invalid! data.{key}.value invalid"))
}

#[cfg(test)]
mod tests {
    use super::check_subscribe_value as check;

    #[test]
    fn table_examples() {
        assert!(check("thing1", "一二三四五六七八九十一二三四五六七八九十").is_none());
        assert!(check("thing1", "一二三四五六七八九十一二三四五六七八九十一").is_some());
        assert!(check("number2", "339208499").is_none());
        assert!(check("number2", "12a").is_some());
        assert!(check("phrase3", "配送中").is_none());
        assert!(check("phrase3", "abc").is_some());
        assert!(check("car_number4", "粤A8Z888挂").is_none());
        assert!(check("phone_number5", "+86-0766-66888866").is_none());
        assert!(check("amount6", "￥100.50元").is_none());
        assert!(check("time7", "2019年10月1日 15:01").is_none());
        assert!(check("name8", "张三").is_none());
        assert!(check("character_string9", "订单").is_some());
        assert!(check("thing1", "").is_some());
    }
}
