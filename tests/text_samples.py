"""Korean sentences whose emotion is plain, with the labels a text model may fairly give each; diaries of plain
words."""

CLEAR_SENTENCES = [
    ("오늘 정말 행복하고 즐거웠어. 친구들이랑 웃으면서 맛있는 것도 먹었어.", {"기쁨"}),
    ("엄마가 돌아가셔서 너무 슬프고 눈물이 나.", {"슬픔", "상처"}),
    ("회사에서 부장님이 또 나한테만 소리를 질러서 진짜 화가 나.", {"분노"}),
    ("내일 시험인데 떨어질까 봐 걱정돼서 잠이 안 와.", {"불안"}),
]

# Words the text model reads as plainly sad, and as plain (each sentence's P(neutral) is 0.44-0.55, above
# [text] neutral_threshold 0.29, so they sit at the calm neutral point).
SAD_WORDS = "오늘 너무 슬펐어. 혼자라서 외롭고 눈물이 났어."
PLAIN_SENTENCES = ["오후에 회의가 있었다.", "버스를 타고 집에 왔다.", "오늘은 도서관에 갔다."]
PLAIN_WORDS = " ".join(PLAIN_SENTENCES)
