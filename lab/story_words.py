"""The story generator's vocabulary: word lists by meaning, most frequent first.

Which words, and in what order, follows the word frequencies of real TinyStories text (a child's
vocabulary); no story text is stored here. Nouns are listed in the singular (``mouse:mice`` gives an
irregular plural); verbs in the base form, ``base[+][:past[:participle]]`` where ``+`` doubles the last
consonant (``stop+`` → stopped, stopping). `lab.story_grammar` inflects them.

Lists here say what a word can stand for in a sentence (a toy, a place, a way of moving), not its word class:
word classes have one owner, the lab's lexicon (`lab.lexicon`, ``lab/lexicon.txt``), which classes every word
the generator writes (tests/test_stories.py checks each list's words carry their slot's class there).
"""

from __future__ import annotations


def _w(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# ---- Characters ------------------------------------------------------------------------------------------
GIRLS = _w("""Lily Lucy Sue Sarah Anna Jane Mia Sally Amy Sara Mary Emma Molly Jenna Emily Jenny Jill Suzy Lola
    Kim Jess Alice Ellie Lila Eva Clara Tess Kara Grace Helen Ella Lisa Ruby Tina Sophie Bella Kate Katie Daisy
    Rose Zoe Nina Maddie Becky Janet Mimi Lulu Olive Ann Jessie Cora Hannah Lucy Chloe Mila Rosie Abby Amber
    Ivy Jade Layla Nora Penny Poppy Tara Wendy Millie Holly Gigi Jojo Susie""")
BOYS = _w("""Tim Timmy Tom Max Ben Sam Jack John Bob Billy Tommy Benny Joe Sammy Jimmy Johnny Jake Alex Peter Pete
    Thomas Ted Jamie Charlie Jay Jeff Ollie Rex Joey Finn Tony Jim James Steve Zac Harry Carl Jerry George Paul
    Daniel Henry Ricky Jacob Bobby Dave Josh Mikey Todd Andy Leo Luke Mark Oscar Ryan Noah Eli Adam Danny Freddy
    Kevin Larry Mike Nick Owen Roy Sid Teddy Toby Willy Ned""")
PET_NAMES = _w("""Spot Buddy Fluffy Whiskers Coco Bubbles Rover Pip Chirpy Tweety Nutty Hoppy Bingo
    Fuzzy Snowy Bouncy Mittens Squeaky Dotty Zippy Smokey Oreo Nibbles""")
# Who a hero or friend can be, besides a girl or a boy (articles come from the grammar).
ANIMALS = _w("""bird cat dog bear bunny fish mouse:mice rabbit puppy squirrel duck lion frog bee owl kitten ant
    elephant cow horse dragon monkey butterfly swan spider snake goat fox bug pig turtle tiger wolf:wolves
    sheep:sheep whale dolphin chicken zebra giraffe penguin hippo kangaroo crab octopus snail lizard deer:deer
    bat beetle caterpillar dinosaur donkey eagle hen lamb parrot pony raccoon seal shark worm ladybug
    ostrich alligator crocodile skunk squirrel mule goat rat flea sparrow pigeon ostrich oyster chick
    cub kitty bunny hamster goldfish unicorn puppy koala panda polar-bear moose:moose camel peacock rooster
    turkey beaver otter hedgehog firefly:fireflies mosquito:mosquitoes pup pet""")
PEOPLE = _w("""man:men lady girl boy friend farmer baby kid woman:women teacher doctor princess prince king queen
    neighbor child:children person:people nurse pirate fairy giant clown wizard witch sailor knight firefighter
    driver baker cook brother sister aunt uncle
    mailman:mailmen fireman:firemen shopkeeper librarian babysitter tutor officer cashier plumber
    barber coach actor hunter chief pupil stranger twin owner mother father grandmother grandfather
    son daughter wife:wives husband guest helper""")
FAMILY = _w("mom dad mommy daddy mum mama papa grandma grandpa")  # the grown-up of a story

# ---- Things ----------------------------------------------------------------------------------------------
TOYS = _w("""ball toy doll car kite train truck teddy block balloon robot puzzle boat drum bike swing slide
    wagon hoop bubble crayon puppet rattle jump-rope marble game rocket plane whistle trumpet tricycle scooter
    sandcastle bucket shovel spinning-top
    teddy-bear toy-car rubber-duck jigsaw sticker crayon marker bead kazoo flute guitar violin
    piano trumpet saxophone drum tambourine ball-game board-game hula-hoop pinwheel wand sword shield mask
    costume trampoline seesaw sandbox football basketball soccer-ball skateboard kayak raft""")
FOODS = _w("""cake cookie candy apple ice-cream jam carrot bread juice milk cheese soup snack pie banana sandwich
    orange pear cherry:cherries berry:berries grape lemon muffin cupcake pizza popcorn honey egg corn toast
    peach melon strawberry:strawberries pancake cereal chocolate lollipop salad noodle tomato:tomatoes potato:potatoes
    treat nut
    porridge spaghetti broccoli celery cauliflower avocado onion radish pumpkin pretzel
    sausage steak beef peanut oats rice dough flour sugar butter sauce ketchup pepper soup yogurt jelly
    cupcake brownie donut waffle biscuit cracker dessert pudding lemonade tea cocoa fruit vegetable
    watermelon plum blueberry:blueberries raspberry:raspberries mushroom meatball pasta omelette""")
PLACES = _w("""park garden forest house kitchen pond hill store beach room backyard woods river yard lake
    jungle school ocean sea town farm field playground zoo castle meadow cave shop library village island
    mountain bakery barn street sky city road valley
    attic bedroom bathroom classroom office garage hospital airport hotel factory temple palace
    kingdom harbor port ranch circus theater market pool island jungle desert tower bridge tunnel cliff
    shore reef lighthouse neighborhood mall""")
HOME_THINGS = _w("""box door bed table window chair cup book picture bag blanket bowl plate spoon basket
    shelf:shelves pillow lamp clock mirror rug sofa closet drawer jar bottle bath sink fork key bell hat coat
    umbrella paper pencil card letter present gift map phone radio tent
    cupboard wardrobe bookcase bookshelf fridge oven stove toaster couch cushion curtain towel
    napkin teaspoon pot pan tray vase candle flashlight lantern envelope notebook journal dictionary
    folder scissors:scissors hammer nail rope string thread yarn wheel ladder bucket broom mop soap brush
    comb helmet glasses:glasses wallet purse backpack suitcase ticket camera computer telephone clock
    microscope tool axe rake net basket cardboard sack blanket quilt crib desk bench sink faucet
    knife:knives seat wall fence sign hook tank chest pipe machine frame package cube stairs""")
NATURE = _w("""tree flower rock water sun grass leaf:leaves stick sand shell stone bush hole nest cloud star moon
    rainbow puddle branch mud snow rain wind feather seed log apple-tree pebble berry-bush hill pond
    petal seashell acorn vine twig reed pine oak sunflower daisy:daisies rose tulip mushroom
    stream wave breeze fog storm thunder lightning sunset sunrise hilltop meadow puddle pebble dirt soil
    sand field island volcano comet rainbow cloud snowflake icicle leaf-pile hay straw mud
    plant fire land hedge path smoke clay""")
CLOTHES = _w("""dress hat shirt shoe sock coat scarf jacket boot mitten cap sweater belt necklace crown
    mask cape costume apron glove gown skirt bracelet ribbon bow collar suit""")
BODY = _w("""hand head face eye ear nose mouth foot:feet leg arm tail knee tummy finger hair wing paw tooth:teeth
    toe neck shoulder cheek chin lip nose back beak fur feather skin heart brain tongue whisker""")
TREASURES = _w("""treasure coin key map ring shell feather stone box egg seed crown jewel button flower
    pearl diamond gem necklace bracelet crystal trophy medal star sticker postcard locket""")
EVENTS = _w("""party picnic game race show trip birthday walk adventure nap lunch dinner breakfast
    festival parade show picnic holiday vacation journey visit dance contest lesson bath bedtime""")
TIME_WORDS = _w("morning afternoon evening night day week summer winter spring time")
FEELINGS_NOUNS = _w("""fun idea smile hug joy help surprise noise song story lesson friendship kindness courage
    happiness sadness fear anger love hope patience trust respect goodness knowledge
    sunshine excitement laughter kindness comfort peace luck truth promise secret dream wish mistake
    problem plan chance question answer reward lesson adventure memory:memories friendship""")

# ---- Describing words ------------------------------------------------------------------------------------
SIZE_ADJ = _w("""big little small tiny huge tall long short giant large round fat thin thick
    enormous wide narrow deep heavy light chubby skinny low steep flat bigger smaller biggest""")
COLOR_ADJ = _w("""red blue green yellow pink purple white black brown orange gray golden colorful
    silver grey dark light bright striped spotted rainbow""")
LOOK_ADJ = _w("""shiny pretty beautiful new old soft bright clean dirty sparkly fluffy wet dry warm cold fancy
    special strange magic heavy sharp smooth sticky messy broken shiny loud quiet fuzzy empty full
    furry hairy slimy smelly slippery bumpy fragile delicate ancient modern rare valuable
    expensive cheap ugly cute lovely adorable icy frozen dusty rusty sparkling glowing twinkling
    colourful mysterious magical unusual wonderful amazing perfect plain simple strange tidy cozy
    dangerous healthy wild difficult boring weird unique neat real regular noisy""")
CHARACTER_ADJ = _w("""little kind happy brave curious friendly good nice funny silly smart gentle shy clever
    playful sweet lazy grumpy bossy careful helpful naughty polite quiet strong wise cheerful busy lonely
    young old proud
    generous patient honest humble stubborn clumsy foolish rude selfish greedy loyal
    reliable obedient creative adventurous independent thoughtful caring respectful cautious fearful
    jolly lucky poor famous brilliant tough popular successful lively rich fair weak harmless dependable
    jealous nosy impatient enthusiastic determined persistent graceful charming mighty""")
GOOD_FEELINGS = _w("""happy excited proud glad surprised thankful grateful amazed relieved calm safe
    delighted pleased overjoyed satisfied cheerful content peaceful comfortable brave""")
BAD_FEELINGS = _w("""sad scared upset bad angry worried tired hungry lonely afraid mad bored frightened grumpy sorry embarrassed
    frustrated disappointed confused nervous anxious miserable guilty ashamed jealous
    uncomfortable thirsty sleepy sick dizzy shy""")
DAY_ADJ = _w("""sunny bright warm beautiful nice cold windy rainy lovely hot cloudy snowy
    foggy stormy chilly peaceful quiet""")
TASTE_ADJ = _w("""yummy delicious sweet tasty juicy fresh warm crunchy
    salty sour bitter spicy sticky creamy cold hot crispy""")

# ---- Doing words -----------------------------------------------------------------------------------------
# Things a character does for fun, alone: "loved to {play}", "was {playing}".
PASTIMES = _w("""play run+:ran:run dance sing:sang:sung swim+:swam:swum jump climb draw:drew:drawn paint read:read:read
    explore hop+ skip+ laugh ride:rode:ridden bake build:built:built fly:flew:flown race slide:slid:slid
    swing:swung:swung splash twirl giggle
    surf sail skate explore camp hike paddle float wiggle bounce spin+:spun:spun
    roll swim+:swam:swum dig+:dug:dug sing:sang:sung whistle draw:drew:drawn write:wrote:written
    practice study jog+ tumble""")
# Things done to an object: "{found} a {toy}".
HANDLE = _w("""find:found:found see:saw:seen pick take:took:taken hold:held:held throw:threw:thrown catch:caught:caught
    carry push pull kick clean wash fix share hug+ keep:kept:kept open touch grab+ get+:got:gotten
    make:made:made bring:brought:brought give:gave:given show:showed:shown drop+ hide:hid:hidden
    love like want need use buy:bought:bought lose:lost:lost paint draw:drew:drawn hug+ fill shake:shook:shaken
    break:broke:broken win+:won:won borrow
    lift wrap+ fold squeeze stir+ pour spray sprinkle collect gather deliver decorate
    measure weigh count polish plant feed:fed:fed tie lock unlock pack unpack mix fetch lend:lent:lent
    trade sell:sold:sold mail send:sent:sent paint scoop hang:hung:hung tug+ poke peek bury
    cut+:cut:cut hit+:hit:hit set+:set:set bite:bit:bitten wear:wore:worn check smell lick pass offer
    steal:stole:stolen cover count blow:blew:blown chew twist point knock""")
EAT = _w("eat:ate:eaten taste share bake cook try want love like bite:bit:bitten drink:drank:drunk munch")
MOVE = _w("""walk run+:ran:run go:went:gone come:came:come hop+ fly:flew:flown swim+:swam:swum climb crawl
    jump march rush hurry race skip+ wander
    stroll waddle gallop zoom dash tiptoe scurry slide:slid:slid roll swing:swung:swung drift
    float glide sneak crawl stumble tumble rush wander travel
    follow chase turn fall:fell:fallen drive:drove:driven return lead:led:led""")
SAY = _w("""say:said:said ask reply shout whisper cry laugh yell exclaim answer giggle smile nod+ sigh cheer
    scream giggle chirp whine mumble grumble call explain announce suggest complain promise beg+ agree talk""")
THINK = _w("""think:thought:thought know:knew:known feel:felt:felt wonder remember forget:forgot:forgotten hope
    wish decide learn realize understand:understood:understood believe notice
    imagine dream guess recognize trust worry notice discover expect
    pretend enjoy admire forgive:forgave:forgiven""")
HELP = _w("help thank hug+ comfort save hold:held:held carry teach:taught:taught show:showed:shown protect rescue heal invite")
LOOK_VERBS = _w("look watch listen stare smile wait hide:hid:hidden rest sit+:sat:sat sleep:slept:slept hear:heard:heard stand:stood:stood")
# How something is done; classed with the function words, as the lab's word classes have no adverb class.
ADVERBS = _w("""happily slowly quickly carefully gently loudly softly quietly brightly sadly excitedly proudly
    bravely patiently safely tightly nicely kindly badly quickly closely neatly freely properly quietly
    suddenly finally eventually luckily sadly""")
