//! Relevance on a seeded synthetic directory (2,000 and 20,000 members, names from six
//! locales), compared with a brute-force Damerau-Levenshtein ranking of every member,
//! and the search rate at 20,000 members.
//!
//! A hit counts as the right person when it has the target's name (folded): two members
//! with the same name cannot be told apart by a query of that name, by any engine.
//! Run with `--no-capture` to see the table.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::Instant;

use member_search::distance::osa;
use member_search::fold::{fold, query_words, tokenize};
use member_search::{Member, MemberIndex, SearchRequest};
use uuid::Uuid;

/// SplitMix64: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Skewed to the head of a list (common names are common).
    fn skewed<'a>(&mut self, list: &[&'a str]) -> &'a str {
        let u = self.unit();
        list[((u * u) * list.len() as f64) as usize]
    }
}

struct Locale {
    weight: usize,
    first: &'static [&'static str],
    last: &'static [&'static str],
    letters: &'static str,
}

const LOCALES: &[Locale] = &[
    Locale {
        weight: 35,
        first: &[
            "James",
            "Mary",
            "John",
            "Patricia",
            "Robert",
            "Jennifer",
            "Michael",
            "Linda",
            "William",
            "Elizabeth",
            "David",
            "Barbara",
            "Richard",
            "Susan",
            "Joseph",
            "Jessica",
            "Thomas",
            "Sarah",
            "Charles",
            "Karen",
            "Christopher",
            "Nancy",
            "Daniel",
            "Lisa",
            "Matthew",
            "Betty",
            "Anthony",
            "Margaret",
            "Mark",
            "Sandra",
            "Donald",
            "Ashley",
            "Steven",
            "Kimberly",
            "Paul",
            "Emily",
            "Andrew",
            "Donna",
            "Joshua",
            "Michelle",
            "Kenneth",
            "Dorothy",
            "Kevin",
            "Carol",
            "Brian",
            "Amanda",
            "George",
            "Melissa",
            "Edward",
            "Deborah",
            "Ronald",
            "Stephanie",
            "Timothy",
            "Rebecca",
            "Jason",
            "Sharon",
            "Jeffrey",
            "Laura",
            "Ryan",
            "Cynthia",
            "Jacob",
            "Kathleen",
            "Gary",
            "Amy",
            "Nicholas",
            "Shirley",
            "Eric",
            "Angela",
            "Jonathan",
            "Helen",
            "Stephen",
            "Anna",
            "Larry",
            "Brenda",
            "Justin",
            "Pamela",
            "Scott",
            "Nicole",
            "Brandon",
            "Emma",
            "Benjamin",
            "Samantha",
            "Samuel",
            "Katherine",
            "Gregory",
            "Christine",
            "Frank",
            "Debra",
            "Alexander",
            "Rachel",
        ],
        last: &[
            "Smith",
            "Johnson",
            "Williams",
            "Brown",
            "Jones",
            "Miller",
            "Davis",
            "Wilson",
            "Anderson",
            "Taylor",
            "Thomas",
            "Moore",
            "Jackson",
            "Martin",
            "Lee",
            "Thompson",
            "White",
            "Harris",
            "Clark",
            "Lewis",
            "Robinson",
            "Walker",
            "Young",
            "Allen",
            "King",
            "Wright",
            "Scott",
            "Hill",
            "Green",
            "Adams",
            "Baker",
            "Nelson",
            "Carter",
            "Mitchell",
            "Roberts",
            "Campbell",
            "Parker",
            "Evans",
            "Edwards",
            "Collins",
            "Stewart",
            "Morris",
            "Rogers",
            "Reed",
            "Cook",
            "Morgan",
            "Bell",
            "Murphy",
            "Bailey",
            "Cooper",
            "Richardson",
            "Cox",
            "Howard",
            "Ward",
            "Peterson",
            "Gray",
            "James",
            "Watson",
            "Brooks",
            "Kelly",
            "Sanders",
            "Price",
            "Bennett",
            "Wood",
            "Barnes",
            "Ross",
            "Henderson",
            "Coleman",
            "Jenkins",
            "Perry",
            "Powell",
            "Long",
            "Patterson",
            "Hughes",
            "Washington",
            "Butler",
            "Simmons",
            "Foster",
            "Bryant",
            "Alexander",
            "Russell",
            "Griffin",
            "Hayes",
            "Myers",
            "Ford",
            "Hamilton",
            "Graham",
            "Sullivan",
            "Wallace",
            "Woods",
            "Cole",
            "West",
            "Jordan",
            "Owens",
            "Reynolds",
            "Fisher",
            "Ellis",
            "Harrison",
            "Gibson",
            "McDonald",
            "Marshall",
            "Murray",
            "Freeman",
            "Wells",
            "Webb",
            "Simpson",
            "Stevens",
            "Tucker",
            "Porter",
            "Hunter",
            "Hicks",
            "Crawford",
            "Henry",
            "Boyd",
            "Mason",
            "Kennedy",
            "Warren",
            "Dixon",
            "Burns",
            "Gordon",
            "Shaw",
            "Holmes",
            "Rice",
            "Robertson",
            "Hunt",
            "Black",
            "Daniels",
            "Palmer",
            "Mills",
            "Nichols",
            "Grant",
            "Knight",
            "Ferguson",
            "Stone",
            "Hawkins",
            "Dunn",
            "Perkins",
            "Hudson",
            "Spencer",
            "Gardner",
            "Stephens",
            "Payne",
            "Pierce",
            "Berry",
            "Matthews",
            "Arnold",
            "Wagner",
            "Willis",
            "Watkins",
            "Olson",
            "Carroll",
            "Duncan",
            "Snyder",
            "Hart",
            "Cunningham",
            "Bradley",
            "Lane",
            "Andrews",
            "Harper",
            "Fox",
            "Riley",
            "Armstrong",
            "Carpenter",
            "Weaver",
            "Greene",
            "Lawrence",
            "Elliott",
            "Sims",
            "Austin",
            "Peters",
            "O'Brien",
            "O'Connor",
            "Fitzgerald",
            "Johnston",
            "Johns",
            "Jonas",
            "Smithson",
            "Robins",
            "Adamson",
            "Hillman",
        ],
        letters: "abcdefghijklmnopqrstuvwxyz",
    },
    Locale {
        weight: 25,
        first: &[
            "José",
            "María",
            "Juan",
            "Lucía",
            "Antonio",
            "Carmen",
            "Manuel",
            "Ana",
            "Francisco",
            "Isabel",
            "David",
            "Laura",
            "Javier",
            "Marta",
            "Daniel",
            "Cristina",
            "Carlos",
            "Sofía",
            "Jesús",
            "Elena",
            "Alejandro",
            "Paula",
            "Miguel",
            "Raquel",
            "Rafael",
            "Pilar",
            "Pablo",
            "Rosa",
            "Sergio",
            "Beatriz",
            "Fernando",
            "Nuria",
            "Jorge",
            "Silvia",
            "Luis",
            "Patricia",
            "Alberto",
            "Andrea",
            "Álvaro",
            "Irene",
            "Adrián",
            "Mónica",
            "Diego",
            "Inés",
            "Raúl",
            "Begoña",
            "Iván",
            "Ángela",
            "Rubén",
            "Verónica",
            "Óscar",
            "Lorena",
            "Andrés",
            "Natalia",
            "Ramón",
            "Alicia",
            "Joaquín",
            "Noelia",
            "Sebastián",
            "Ximena",
        ],
        last: &[
            "García",
            "Rodríguez",
            "González",
            "Fernández",
            "López",
            "Martínez",
            "Sánchez",
            "Pérez",
            "Gómez",
            "Martín",
            "Jiménez",
            "Ruiz",
            "Hernández",
            "Díaz",
            "Moreno",
            "Muñoz",
            "Álvarez",
            "Romero",
            "Alonso",
            "Gutiérrez",
            "Navarro",
            "Torres",
            "Domínguez",
            "Vázquez",
            "Ramos",
            "Gil",
            "Ramírez",
            "Serrano",
            "Blanco",
            "Suárez",
            "Molina",
            "Morales",
            "Ortega",
            "Delgado",
            "Castro",
            "Ortiz",
            "Rubio",
            "Marín",
            "Sanz",
            "Núñez",
            "Iglesias",
            "Medina",
            "Garrido",
            "Cortés",
            "Castillo",
            "Santos",
            "Lozano",
            "Guerrero",
            "Cano",
            "Prieto",
            "Méndez",
            "Cruz",
            "Calvo",
            "Gallego",
            "Vidal",
            "León",
            "Márquez",
            "Herrera",
            "Peña",
            "Flores",
            "Cabrera",
            "Campos",
            "Vega",
            "Fuentes",
            "Carrasco",
            "Díez",
            "Caballero",
            "Reyes",
            "Nieto",
            "Aguilar",
            "Pascual",
            "Santana",
            "Herrero",
            "Lorenzo",
            "Montero",
            "Hidalgo",
            "Giménez",
            "Ibáñez",
            "Ferrer",
            "Durán",
            "Santiago",
            "Benítez",
            "Mora",
            "Vicente",
            "Vargas",
            "Arias",
            "Carmona",
            "Crespo",
            "Román",
            "Pastor",
        ],
        letters: "abcdefghijklmnopqrstuvwxyzáéíóúñ",
    },
    Locale {
        weight: 12,
        first: &[
            "Anh",
            "Bảo",
            "Châu",
            "Dũng",
            "Giang",
            "Hà",
            "Hải",
            "Hạnh",
            "Hiếu",
            "Hoa",
            "Hùng",
            "Hương",
            "Khánh",
            "Lan",
            "Linh",
            "Long",
            "Mai",
            "Minh",
            "Nam",
            "Ngọc",
            "Nhung",
            "Phong",
            "Phúc",
            "Phương",
            "Quân",
            "Quang",
            "Quỳnh",
            "Sơn",
            "Tâm",
            "Thảo",
            "Thắng",
            "Thanh",
            "Thủy",
            "Tiến",
            "Trang",
            "Trung",
            "Tuấn",
            "Tùng",
            "Uyên",
            "Việt",
            "Vy",
            "Xuân",
            "Yến",
            "Thị Thủy",
            "Văn Hùng",
            "Thị Hương",
            "Đức Anh",
            "Hoàng Long",
            "Minh Châu",
            "Ngọc Ánh",
            "Quốc Bảo",
            "Thanh Tùng",
            "Bích Ngọc",
            "Hữu Phước",
        ],
        last: &[
            "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
            "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Trương", "Đinh", "Lương", "Mai", "Trịnh", "Đoàn",
            "Lâm", "Tạ", "Châu",
        ],
        letters: "abcdeghiklmnopqrstuvxyăâđêôơư",
    },
    Locale {
        weight: 10,
        first: &[
            "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
            "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "小龙", "建华", "志强",
            "俊杰", "子涵", "欣怡", "浩然", "梓轩", "雨桐", "宇轩", "思远", "晓明", "丽娟", "国强",
            "海燕", "春梅", "文杰",
        ],
        last: &[
            "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱",
            "胡", "郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯",
            "邓", "曹", "欧阳", "司马",
        ],
        letters: "",
    },
    Locale {
        weight: 10,
        first: &[
            "Александр",
            "Дмитрий",
            "Максим",
            "Сергей",
            "Андрей",
            "Алексей",
            "Артём",
            "Илья",
            "Кирилл",
            "Михаил",
            "Никита",
            "Матвей",
            "Роман",
            "Егор",
            "Арсений",
            "Иван",
            "Денис",
            "Евгений",
            "Тимофей",
            "Владимир",
            "Анастасия",
            "Мария",
            "Анна",
            "Виктория",
            "Екатерина",
            "Наталья",
            "Марина",
            "Полина",
            "Софья",
            "Дарья",
            "Алиса",
            "Ксения",
            "Елена",
            "Ольга",
            "Татьяна",
            "Юлия",
            "Ирина",
            "Светлана",
            "Людмила",
            "Вера",
        ],
        last: &[
            "Иванов",
            "Смирнов",
            "Кузнецов",
            "Попов",
            "Васильев",
            "Петров",
            "Соколов",
            "Михайлов",
            "Новиков",
            "Фёдоров",
            "Морозов",
            "Волков",
            "Алексеев",
            "Лебедев",
            "Семёнов",
            "Егоров",
            "Павлов",
            "Козлов",
            "Степанов",
            "Николаев",
            "Орлов",
            "Андреев",
            "Макаров",
            "Никитин",
            "Захаров",
            "Зайцев",
            "Соловьёв",
            "Борисов",
            "Яковлев",
            "Григорьев",
            "Романов",
            "Воробьёв",
            "Сергеев",
            "Кузьмин",
            "Фролов",
            "Александров",
            "Дмитриев",
            "Королёв",
            "Гусев",
            "Киселёв",
        ],
        letters: "абвгдежзиклмнопрстуфхцчшщыэюя",
    },
    Locale {
        weight: 8,
        first: &[
            "محمد",
            "أحمد",
            "علي",
            "عمر",
            "خالد",
            "يوسف",
            "إبراهيم",
            "حسن",
            "حسين",
            "عبدالله",
            "مصطفى",
            "سعيد",
            "طارق",
            "كريم",
            "فاطمة",
            "عائشة",
            "مريم",
            "زينب",
            "نور",
            "سارة",
            "ليلى",
            "هدى",
            "رنا",
            "سلمى",
            "ياسمين",
        ],
        last: &[
            "العلي",
            "الحسن",
            "المصري",
            "الأحمد",
            "الخطيب",
            "الشامي",
            "حداد",
            "منصور",
            "سليمان",
            "عبدالرحمن",
            "النجار",
            "الحلبي",
            "القاسم",
            "الزين",
            "العمر",
            "يوسف",
            "درويش",
            "خوري",
            "سعد",
            "عيسى",
        ],
        letters: "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    },
];

struct Person {
    member: Member,
    locale: usize,
}

fn directory(size: usize, seed: u64) -> Vec<Person> {
    let mut rng = Rng(seed);
    let total: usize = LOCALES.iter().map(|l| l.weight).sum();
    (0..size)
        .map(|i| {
            let mut r = rng.below(total);
            let locale = LOCALES
                .iter()
                .position(|l| {
                    if r < l.weight {
                        true
                    } else {
                        r -= l.weight;
                        false
                    }
                })
                .unwrap();
            let l = &LOCALES[locale];
            let first = rng.skewed(l.first);
            let mut last = rng.skewed(l.last).to_owned();
            // Russian family names agree with the person.
            if locale == 4 && (first.ends_with('а') || first.ends_with('я')) {
                last.push('а');
            }
            let ascii = |s: &str| {
                fold(s)
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
            };
            let (f, la) = (ascii(first), ascii(&last));
            let email = if f.is_empty() || la.is_empty() {
                format!("parent{i}@example.org")
            } else {
                match rng.below(3) {
                    0 => format!("{f}.{la}@example.org"),
                    1 => format!("{}{la}{}@mail.example.com", &f[..1], rng.below(100)),
                    _ => format!("{f}{}@school.example.net", rng.below(1000)),
                }
            };
            let mut member = Member::new(Uuid::from_u128(i as u128 + 1), first, &last, &email);
            member.role =
                ["member", "member", "member", "admin", "treasurer"][rng.below(5)].to_owned();
            member.status = ["active", "active", "active", "invited"][rng.below(4)].to_owned();
            member.committee = (rng.below(3) == 0).then(|| {
                ["Book Fair", "Fundraising", "Teacher Appreciation"][rng.below(3)].to_owned()
            });
            Person { member, locale }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Exact,
    Email,
    Substitution,
    Deletion,
    Insertion,
    Transposition,
    /// "First Las": the full first name, the start of the last name.
    TypeAheadFull,
    /// The first 3–5 letters of a first or last name alone.
    TypeAheadWord,
    NoDiacritics,
    Cjk,
}

impl Kind {
    const fn k(self) -> usize {
        match self {
            Self::TypeAheadFull | Self::TypeAheadWord => 20,
            _ => 3,
        }
    }
    const fn is_typo(self) -> bool {
        matches!(
            self,
            Self::Substitution | Self::Deletion | Self::Insertion | Self::Transposition
        )
    }
}

struct Query {
    kind: Kind,
    text: String,
    target: usize,
    /// For `TypeAheadWord`: the field value (folded) a hit must have, first or last name.
    word_of_first: bool,
}

fn typo(rng: &mut Rng, word: &str, kind: Kind, letters: &str) -> String {
    let mut c: Vec<char> = word.chars().collect();
    if c.len() < 4 {
        return word.to_owned();
    }
    let letters: Vec<char> = letters.chars().collect();
    match kind {
        Kind::Substitution => {
            let i = rng.below(c.len());
            loop {
                let l = letters[rng.below(letters.len())];
                if fold(&l.to_string()) != fold(&c[i].to_string()) {
                    c[i] = l;
                    break;
                }
            }
        }
        Kind::Deletion => {
            c.remove(rng.below(c.len()));
        }
        Kind::Insertion => {
            let i = rng.below(c.len() + 1);
            c.insert(i, letters[rng.below(letters.len())]);
        }
        Kind::Transposition => {
            let candidates: Vec<usize> = (0..c.len() - 1).filter(|&i| c[i] != c[i + 1]).collect();
            if let Some(&i) = candidates.get(rng.below(candidates.len().max(1))) {
                c.swap(i, i + 1);
            }
        }
        _ => {}
    }
    c.into_iter().collect()
}

fn queries(people: &[Person], seed: u64) -> Vec<Query> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let plan = [
        (Kind::Exact, 40),
        (Kind::Email, 20),
        (Kind::Substitution, 30),
        (Kind::Deletion, 30),
        (Kind::Insertion, 30),
        (Kind::Transposition, 30),
        (Kind::TypeAheadFull, 30),
        (Kind::TypeAheadWord, 30),
        (Kind::NoDiacritics, 40),
        (Kind::Cjk, 30),
    ];
    for (kind, n) in plan {
        let mut made = 0;
        while made < n {
            let target = rng.below(people.len());
            let p = &people[target];
            let m = &p.member;
            let latin = p.locale <= 2;
            let text = match kind {
                Kind::Exact => format!("{} {}", m.first_name, m.last_name),
                Kind::Email => m.email.clone(),
                k if k.is_typo() => {
                    if p.locale == 3 {
                        continue;
                    }
                    let letters = LOCALES[p.locale].letters;
                    let words: Vec<String> = format!("{} {}", m.first_name, m.last_name)
                        .split(' ')
                        .map(|w| typo(&mut rng, w, k, letters))
                        .collect();
                    let text = words.join(" ");
                    if fold(&text) == fold(&format!("{} {}", m.first_name, m.last_name)) {
                        continue; // every word too short for a typo
                    }
                    text
                }
                Kind::TypeAheadFull => {
                    let last = fold(&m.last_name);
                    let n = last.chars().count();
                    if !latin && p.locale != 4 || n < 4 {
                        continue;
                    }
                    let cut = 3 + rng.below(3).min(n - 4);
                    format!(
                        "{} {}",
                        m.first_name,
                        last.chars().take(cut).collect::<String>()
                    )
                }
                Kind::TypeAheadWord => {
                    let use_first = rng.below(2) == 0;
                    let word = fold(if use_first {
                        &m.first_name
                    } else {
                        &m.last_name
                    });
                    let n = word.chars().count();
                    if !latin && p.locale != 4 || n < 4 || word.contains(' ') {
                        continue;
                    }
                    let cut = 3 + rng.below(3).min(n - 4);
                    out.push(Query {
                        kind,
                        text: word.chars().take(cut).collect(),
                        target,
                        word_of_first: use_first,
                    });
                    made += 1;
                    continue;
                }
                Kind::NoDiacritics => {
                    let full = format!("{} {}", m.first_name, m.last_name);
                    if full.is_ascii() || !latin {
                        continue;
                    }
                    fold(&full)
                }
                Kind::Cjk => {
                    if p.locale != 3 {
                        continue;
                    }
                    // As typed: family name first, no space.
                    format!("{}{}", m.last_name, m.first_name)
                }
                _ => continue,
            };
            out.push(Query {
                kind,
                text,
                target,
                word_of_first: false,
            });
            made += 1;
        }
    }
    out
}

/// The brute-force reference: every member's cost as the sum over query words of the
/// best of its words (exact 0, prefix 1, else 2 × edit distance), lowest first, by id.
struct Reference {
    words: Vec<Vec<Vec<char>>>,
}

impl Reference {
    fn new(people: &[Person]) -> Self {
        let words = people
            .iter()
            .map(|p| {
                let m = &p.member;
                let mut w: Vec<Vec<char>> = [
                    format!("{} {}", m.first_name, m.last_name),
                    format!("{}{}", m.last_name, m.first_name),
                    format!("{}{}", m.first_name, m.last_name),
                    m.email.clone(),
                ]
                .iter()
                .flat_map(|t| tokenize(t))
                .map(|t| t.text.chars().collect())
                .collect();
                w.sort();
                w.dedup();
                w
            })
            .collect();
        Self { words }
    }

    fn rank(&self, text: &str, k: usize) -> Vec<usize> {
        let q: Vec<Vec<char>> = query_words(text)
            .into_iter()
            .map(|t| t.text.chars().collect())
            .collect();
        let mut scored: Vec<(usize, usize)> = self
            .words
            .iter()
            .enumerate()
            .map(|(i, words)| {
                let cost = q
                    .iter()
                    .map(|qw| {
                        words
                            .iter()
                            .map(|w| {
                                if w == qw {
                                    0
                                } else if w.starts_with(qw) {
                                    1
                                } else {
                                    2 * osa(qw, w)
                                }
                            })
                            .min()
                            .unwrap_or(usize::MAX / 16)
                    })
                    .sum();
                (cost, i)
            })
            .collect();
        scored.sort_unstable();
        scored.into_iter().take(k).map(|(_, i)| i).collect()
    }
}

fn same_name(a: &Member, b: &Member) -> bool {
    fold(&a.first_name) == fold(&b.first_name) && fold(&a.last_name) == fold(&b.last_name)
}

fn success(people: &[Person], q: &Query, found: &[usize]) -> bool {
    let target = &people[q.target].member;
    found.iter().take(q.kind.k()).any(|&i| {
        let m = &people[i].member;
        if q.kind == Kind::TypeAheadWord {
            if q.word_of_first {
                fold(&m.first_name) == fold(&target.first_name)
            } else {
                fold(&m.last_name) == fold(&target.last_name)
            }
        } else {
            same_name(m, target)
        }
    })
}

#[derive(Default, Clone, Copy)]
struct Tally {
    n: usize,
    ours: usize,
    ours_first: usize,
    reference: usize,
    reference_first: usize,
}

impl Tally {
    fn pct(a: usize, n: usize) -> f64 {
        100.0 * a as f64 / n.max(1) as f64
    }
}

fn evaluate(size: usize) -> Vec<(Kind, Tally)> {
    let people = directory(size, 0x5EED_0000 + size as u64);
    let index = MemberIndex::build(people.iter().map(|p| p.member.clone()));
    let reference = Reference::new(&people);
    let qs = queries(&people, 0xC0FFEE + size as u64);
    let mut tallies: Vec<(Kind, Tally)> = Vec::new();
    for q in &qs {
        let req = SearchRequest {
            limit: 20,
            ..SearchRequest::new(&q.text)
        };
        let found: Vec<usize> = index
            .search(&req)
            .unwrap()
            .hits
            .iter()
            .map(|h| (h.id.as_u128() - 1) as usize)
            .collect();
        let refd = reference.rank(&q.text, 20);
        let first = |f: &[usize]| {
            let one = Query {
                kind: Kind::Exact,
                text: String::new(),
                target: q.target,
                word_of_first: q.word_of_first,
            };
            q.kind != Kind::TypeAheadWord && success(&people, &one, &f[..f.len().min(1)])
        };
        let idx = match tallies.iter().position(|(k, _)| *k == q.kind) {
            Some(i) => i,
            None => {
                tallies.push((q.kind, Tally::default()));
                tallies.len() - 1
            }
        };
        let t = &mut tallies[idx].1;
        t.n += 1;
        t.ours += usize::from(success(&people, q, &found));
        t.reference += usize::from(success(&people, q, &refd));
        t.ours_first += usize::from(first(&found));
        t.reference_first += usize::from(first(&refd));
        if std::env::var_os("SEARCH_MISSES").is_some() && !success(&people, q, &found) {
            let t = &people[q.target].member;
            let names: Vec<String> = found
                .iter()
                .take(5)
                .map(|&i| {
                    format!(
                        "{} {}",
                        people[i].member.first_name, people[i].member.last_name
                    )
                })
                .collect();
            eprintln!(
                "miss {:?} {:?} (want {} {}) got {:?}",
                q.kind, q.text, t.first_name, t.last_name, names
            );
        }
    }
    eprintln!(
        "\n{size} members, {} queries: kind | n | ours in top k | reference in top k | ours first | reference first",
        qs.len()
    );
    let mut typo = Tally::default();
    for (kind, t) in &tallies {
        eprintln!(
            "{kind:?} | {} | {:.1}% (k={}) | {:.1}% | {:.1}% | {:.1}%",
            t.n,
            Tally::pct(t.ours, t.n),
            kind.k(),
            Tally::pct(t.reference, t.n),
            Tally::pct(t.ours_first, t.n),
            Tally::pct(t.reference_first, t.n)
        );
        if kind.is_typo() {
            typo.n += t.n;
            typo.ours += t.ours;
            typo.reference += t.reference;
            typo.ours_first += t.ours_first;
            typo.reference_first += t.reference_first;
        }
    }
    eprintln!(
        "one typo per word (all kinds) | {} | {:.1}% | {:.1}% | {:.1}% | {:.1}%",
        typo.n,
        Tally::pct(typo.ours, typo.n),
        Tally::pct(typo.reference, typo.n),
        Tally::pct(typo.ours_first, typo.n),
        Tally::pct(typo.reference_first, typo.n)
    );
    tallies
}

fn rate(tallies: &[(Kind, Tally)], pred: impl Fn(Kind) -> bool) -> f64 {
    let (mut n, mut ok) = (0, 0);
    for (_, t) in tallies.iter().filter(|(k, _)| pred(*k)) {
        n += t.n;
        ok += t.ours;
    }
    Tally::pct(ok, n)
}

#[test]
fn relevance_at_2000_members() {
    let t = evaluate(2_000);
    assert!(rate(&t, Kind::is_typo) >= 95.0, "one typo per word, top 3");
    assert!((rate(&t, |k| matches!(k, Kind::Exact | Kind::Email)) - 100.0).abs() < f64::EPSILON);
}

#[test]
fn relevance_at_20000_members() {
    let t = evaluate(20_000);
    assert!(rate(&t, Kind::is_typo) >= 95.0, "one typo per word, top 3");
    assert!(
        rate(&t, |k| matches!(
            k,
            Kind::TypeAheadFull | Kind::TypeAheadWord
        )) >= 90.0,
        "type-ahead, top 20"
    );
    assert!((rate(&t, |k| matches!(k, Kind::Exact | Kind::Email)) - 100.0).abs() < f64::EPSILON);
    assert!(rate(&t, |k| matches!(k, Kind::NoDiacritics | Kind::Cjk)) >= 95.0);
}

#[test]
fn search_rate_at_20000_members() {
    let people = directory(20_000, 0x5EED_0000 + 20_000);
    let started = Instant::now();
    let index = MemberIndex::build(people.iter().map(|p| p.member.clone()));
    let built = started.elapsed();
    let qs = queries(&people, 0xC0FFEE + 20_000);
    let started = Instant::now();
    let mut found = 0usize;
    let rounds = 3;
    for _ in 0..rounds {
        for q in &qs {
            found += index
                .search(&SearchRequest::new(&q.text))
                .unwrap()
                .hits
                .len();
        }
    }
    let elapsed = started.elapsed();
    let per_s = (rounds * qs.len()) as f64 / elapsed.as_secs_f64();
    eprintln!(
        "\n20,000 members: built in {:.0} ms, {:.0} queries/s on one core ({} queries, {found} hits), ~{} bytes per member",
        built.as_secs_f64() * 1000.0,
        per_s,
        rounds * qs.len(),
        index.approx_heap_bytes() / index.len()
    );
    assert!(found > 0);
    // The broadest queries: one or two letters match thousands of members.
    let broad = [
        "a",
        "m",
        "jo",
        "ma",
        "н",
        "ng",
        "li",
        "smith",
        "maria garcia",
    ];
    let started = Instant::now();
    for q in broad {
        found += index.search(&SearchRequest::new(q)).unwrap().total;
    }
    eprintln!(
        "broad queries ({}): {:.0} queries/s, {found} hits in all",
        broad.join(", "),
        broad.len() as f64 / started.elapsed().as_secs_f64()
    );
    // The memory target for the search structures: ≤ 1 KiB per member.
    assert!(index.approx_heap_bytes() / index.len() <= 1024);
}

#[test]
fn incremental_updates_answer_like_a_fresh_build() {
    let mut people = directory(2_000, 7);
    let mut rng = Rng(11);
    let mut index = MemberIndex::build(people.iter().map(|p| p.member.clone()));
    let donors = directory(500, 8);
    let mut removed = std::collections::HashSet::new();
    for step in 0..1_500 {
        let i = rng.below(people.len());
        if step % 3 == 0 {
            index.remove(people[i].member.id);
            removed.insert(i);
        } else {
            // A rename, a new e-mail, committee or visibility: someone else's details.
            let d = &donors[rng.below(donors.len())].member;
            let m = &mut people[i].member;
            m.first_name.clone_from(&d.first_name);
            m.last_name.clone_from(&d.last_name);
            m.email.clone_from(&d.email);
            m.committee.clone_from(&d.committee);
            m.hidden = if step % 5 == 0 {
                member_search::FieldSet::of(&[member_search::Field::Email])
            } else {
                member_search::FieldSet::NONE
            };
            index.upsert(m.clone());
            removed.remove(&i);
        }
    }
    let fresh = MemberIndex::build(
        people
            .iter()
            .enumerate()
            .filter(|(i, _)| !removed.contains(i))
            .map(|(_, p)| p.member.clone()),
    );
    assert_eq!(index.len(), fresh.len());
    for q in queries(&people, 13) {
        let req = SearchRequest::new(&q.text);
        let (a, b) = (index.search(&req).unwrap(), fresh.search(&req).unwrap());
        assert_eq!(a.total, b.total, "{}", q.text);
        assert_eq!(a.hits, b.hits, "{}", q.text);
        assert_eq!(a.facets, b.facets, "{}", q.text);
        assert_eq!(a.did_you_mean, b.did_you_mean, "{}", q.text);
    }
}
